#!/usr/bin/env bash
# Propagation latency between replicas sharing one Redis: N sequential admin writes on
# replica A, each timed until its `change` event reaches an SSE client on replica C.
# Builds release binaries, then runs benches/propagation.rs, which starts its own
# redis-server (append-only, fsync always) and three switchyard-server replicas, and
# kills them all at the end. Prints count, median, p90, p99 and max in ms; exits
# non-zero if an event does not arrive within 5 s.
#
# Usage: benches/load/propagation.sh [N=300]
set -euo pipefail
cd "$(dirname "$0")/../.."
writes=${1:-300}
command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install redis-server" >&2; exit 1; }

cargo build --release -q -p switchyard-server -p switchyard-benches
target=${CARGO_TARGET_DIR:-target}
echo "== $(redis-server --version | cut -d' ' -f1-3); $(nproc) CPUs; $(uname -sr)"
SWITCHYARD_SERVER_BIN="$target/release/switchyard-server" exec "$target/release/propagation" "$writes"
