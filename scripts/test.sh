#!/usr/bin/env bash
# The whole test suite, runnable on a fresh Debian machine with only the Rust
# toolchain: it installs what the tests need (Python's mmh3 for the independent
# bucketing-vector check; redis-server for the Redis store tests, which start their
# own instances), then runs every Rust test.
set -euo pipefail
cd "$(dirname "$0")/.."

ensure_mmh3() {
  python3 -c 'import mmh3' 2>/dev/null && return 0
  echo "== installing Python package mmh3 (independent murmur3 for the vector check)"
  python3 -m pip install --quiet --user mmh3 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages mmh3 2>/dev/null \
    || { [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq python3-mmh3; } \
    || true
  python3 -c 'import mmh3' || { echo "FATAL: could not install mmh3 for python3" >&2; exit 1; }
}

ensure_redis_server() {
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      echo "== installing Debian package redis-server (the Redis store tests start their own instances)"
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } \
        || echo "apt-get could not install redis-server" >&2
      # The package may start a system service; the tests never use it.
      service redis-server stop 2>/dev/null || true
    fi
  fi
  command -v redis-server >/dev/null || {
    echo "FATAL: redis-server is missing and the Redis store tests need it: install the Debian package redis-server (this script does when run as root)" >&2
    exit 1
  }
  redis-server --version
}

echo "== bucketing vectors against an independent murmur3 (Python mmh3)"
ensure_mmh3
python3 scripts/check_bucketing_vectors.py

echo "== redis-server for the Redis store tests"
ensure_redis_server

echo "== Rust tests (workspace: unit, property, conformance, end-to-end)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --nocapture lets passing tests report, e.g. the Unleash conformance case count.
cargo test --workspace --locked -- --nocapture 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
grep -h "unleash conformance:" "$log" || { echo "FATAL: the Unleash conformance suite did not run" >&2; exit 1; }
passed=$(grep -o '[0-9]* passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -o '[0-9]* failed' "$log" | awk '{s+=$1} END {print s+0}')
echo "rust tests: ${passed} passed, ${failed} failed"
exit "$status"
