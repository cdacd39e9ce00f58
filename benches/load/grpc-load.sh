#!/usr/bin/env bash
# Loopback throughput of gRPC evaluation (switchyard.v1.Evaluation/Evaluate).
# Builds release binaries, starts switchyard-server with --demo on a temporary data
# dir and a loopback gRPC port, reads the demo sdk token from its banner, runs
# benches/grpc_load.rs against the `new-checkout` flag, and stops the server.
# Bounded: DURATION seconds.
#
# Usage: benches/load/grpc-load.sh [DURATION=10] [CONCURRENCY=32] [CHANNELS=1]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
concurrency=${2:-32}
channels=${3:-1}

cargo build --release -q -p switchyard-server -p switchyard-benches
target=${CARGO_TARGET_DIR:-target}
data=$(mktemp -d)
out=$(mktemp)
port=${SWITCHYARD_BENCH_GRPC_PORT:-18281}
"$target/release/switchyard-server" --demo --data-dir "$data" --grpc-addr "127.0.0.1:$port" --http-addr 127.0.0.1:0 >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$out"' EXIT
for _ in $(seq 1 100); do grep -q "export SWITCHYARD_SDK" "$out" && break; sleep 0.1; done
token=$(grep "export SWITCHYARD_SDK" "$out" | cut -d= -f2)
[ -n "$token" ] || { cat "$out"; echo "server did not start" >&2; exit 1; }

echo "== $(nproc) CPUs; $(uname -sr)"
SWITCHYARD_TOKEN=$token "$target/release/grpc_load" --addr "127.0.0.1:$port" \
  --flag new-checkout --concurrency "$concurrency" --channels "$channels" --duration "$duration"
