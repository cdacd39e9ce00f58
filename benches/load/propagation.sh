#!/usr/bin/env bash
# Kill-switch propagation to many streaming clients (issue 10, "Propagation"): builds
# release binaries, raises the open-files limit, and runs benches/propagation/, which
# seeds an environment, starts its own server(s) (with --replicas 3 also a redis-server,
# append-only, fsync always), connects the clients, makes sequential kill/revive writes
# on replica A and times each until every client's stream delivered it. Every child is
# killed at the end. Prints one `summary ...` line per metric (ms, nearest rank); exits
# non-zero when a client misses a write's deadline.
#
# Usage: benches/load/propagation.sh [propagation options]   (all passed through), e.g.
#   benches/load/propagation.sh --clients 1000 --protocol sse  --replicas 1 --writes 50
#   benches/load/propagation.sh --clients 1000 --protocol grpc --replicas 3 --writes 50
#   benches/load/propagation.sh --replicas 1 --relays 3 --clients 3000 --writes 50
#     (1 server + 3 relays following it; clients on the relays, writes on the server)
# Defaults: --clients 1000 --protocol sse --replicas 3 --writes 50 --flags 1.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Each client holds a socket in the tool and one in a server (which inherits the limit).
ulimit -n "$(ulimit -Hn)" || true
cargo build --release -q -p switchyard-server -p switchyard-benches \
  --bin switchyard-server --bin propagation
target=${CARGO_TARGET_DIR:-target}
redis=$(command -v redis-server >/dev/null && redis-server --version | cut -d' ' -f1-3 || echo "no redis-server")
echo "== $redis; $(nproc) CPUs; $(uname -sr); ulimit -n $(ulimit -n)"
SWITCHYARD_SERVER_BIN="$target/release/switchyard-server" exec "$target/release/propagation" "$@"
