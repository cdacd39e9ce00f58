#!/usr/bin/env bash
# Loopback throughput of the flag server's evaluation endpoints, measured with wrk.
# Starts a release build with --demo on a temporary data dir, runs wrk against
# POST /v1/evaluate/development/new-checkout and POST /ofrep/v1/evaluate/flags/new-checkout,
# prints wrk's summaries, and stops the server. Bounded: DURATION seconds per endpoint.
#
# Usage: benches/load/server-load.sh [DURATION=10] [CONNECTIONS=32] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
connections=${2:-32}
threads=${3:-2}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p switchyard-server
data=$(mktemp -d)
out=$(mktemp)
port=${SWITCHYARD_BENCH_PORT:-18181}
target/release/switchyard-server --demo --data-dir "$data" --http-addr "127.0.0.1:$port" --grpc-addr 127.0.0.1:0 >"$out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$out"' EXIT
for _ in $(seq 1 100); do grep -q "export SWITCHYARD_SDK" "$out" && break; sleep 0.1; done
token=$(grep "export SWITCHYARD_SDK" "$out" | cut -d= -f2)
[ -n "$token" ] || { cat "$out"; echo "server did not start" >&2; exit 1; }

run() {
  local name=$1 path=$2 body=$3
  echo "== $name: POST $path ($connections connections, $threads threads, ${duration}s)"
  SWITCHYARD_TOKEN=$token SWITCHYARD_BODY=$body \
    wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s benches/load/post.lua "http://127.0.0.1:$port$path"
}
run "REST single flag" /v1/evaluate/development/new-checkout '{"targetingKey":"user-42","groups":["beta"]}'
run "OFREP single flag" /ofrep/v1/evaluate/flags/new-checkout '{"context":{"targetingKey":"user-42","groups":["beta"]}}'
