#!/usr/bin/env bash
# The whole test suite, runnable on a fresh Debian machine with only the Rust
# toolchain: it installs what the tests need (today: Python's mmh3 for the
# independent bucketing-vector check), then runs every Rust test.
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

echo "== bucketing vectors against an independent murmur3 (Python mmh3)"
ensure_mmh3
python3 scripts/check_bucketing_vectors.py

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
