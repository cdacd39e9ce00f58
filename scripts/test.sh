#!/usr/bin/env bash
# The whole test suite, runnable on a fresh Debian machine with only the Rust
# toolchain: it installs what the tests need (Python's mmh3 for the independent
# bucketing-vector check; the published Python flagd provider and JavaScript OFREP web
# provider; redis-server, haproxy, prometheus, chromium, chromedriver and node, of which
# the tests start their own instances), runs every Rust test, then the API contract test
# (schemathesis against the server binary: scripts/schemathesis.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# A Python package the tests use: `ensure_python MODULE PACKAGE WHY`.
ensure_python() {
  python3 -c "import $1" 2>/dev/null && return 0
  echo "== installing Python package $2 ($3)"
  python3 -m pip install --quiet --user "$2" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "$2" 2>/dev/null \
    || { [ "$1" = mmh3 ] && [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq python3-mmh3; } \
    || true
  python3 -c "import $1" || { echo "FATAL: could not install $2 for python3" >&2; exit 1; }
}

# The real processes the tests start on loopback ports: binary → Debian package.
# redis-server: the Redis store and replica tests (also as Sentinels); redis-cli: makes
# the Redis Cluster of the cluster tests (redis-cli --cluster create); haproxy: the orchestrator's traffic
# router; prometheus: the orchestrator's metric analysis; chromium and chromedriver:
# the web console's browser tests (crates/server/tests/console_browser.rs).
# node and npm: the published JavaScript OpenFeature clients the conformance tests run.
PROCESSES="redis-server:redis-server redis-cli:redis-tools haproxy:haproxy prometheus:prometheus chromium:chromium chromedriver:chromium-driver node:nodejs npm:npm"

ensure_processes() {
  local missing=()
  for entry in $PROCESSES; do
    command -v "${entry%%:*}" >/dev/null || missing+=("${entry#*:}")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null && sudo="sudo -n"; }
    if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
      echo "== installing Debian packages: ${missing[*]} (tests start their own instances)"
      { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"; } \
        || echo "apt-get could not install ${missing[*]}" >&2
      # Packages may start system services; the tests never use them.
      for package in "${missing[@]}"; do $sudo service "$package" stop 2>/dev/null || true; done
    fi
  fi
  for entry in $PROCESSES; do
    command -v "${entry%%:*}" >/dev/null || {
      echo "FATAL: ${entry%%:*} is missing and the tests need it: install the Debian package ${entry#*:} (this script does when run as root)" >&2
      exit 1
    }
  done
  redis-server --version
  haproxy -v | sed -n 1p
  prometheus --version 2>&1 | sed -n 1p
  chromium --version 2>/dev/null | sed -n 1p || true
  chromedriver --version | sed -n 1p
  echo "node $(node --version)"
}

# The published JavaScript clients, pinned, under target/test-clients/node (the tests
# point NODE_PATH there). Nothing here builds or runs the product.
JS_CLIENTS="@openfeature/ofrep-web-provider@0.4.3 @openfeature/web-sdk@1.10.0 @openfeature/core@1.12.0 eventsource@4.1.1"

ensure_js_clients() {
  local dir=target/test-clients/node
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name": "switchyard-test-clients", "private": true}' > "$dir/package.json"
  local missing=()
  for package in $JS_CLIENTS; do
    local name=${package%@*} version=${package##*@}
    grep -qs "\"version\": \"$version\"" "$dir/node_modules/$name/package.json" || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing JavaScript packages: ${missing[*]}"
    (cd "$dir" && npm install --silent --no-audit --no-fund "${missing[@]}") \
      || { echo "FATAL: npm could not install ${missing[*]}" >&2; exit 1; }
  fi
}

echo "== bucketing vectors against an independent murmur3 (Python mmh3)"
ensure_python mmh3 mmh3 "independent murmur3 for the vector check"
python3 scripts/check_bucketing_vectors.py

echo "== published OpenFeature clients the conformance tests run (Python)"
ensure_python openfeature.contrib.provider.flagd openfeature-provider-flagd==0.6.1 \
  "the flagd provider, RPC mode: crates/server/tests/flagd_python.rs"

echo "== redis-server, haproxy, prometheus, chromium, chromedriver and node for the tests that run them"
ensure_processes

echo "== published OpenFeature clients the conformance tests run (JavaScript)"
ensure_js_clients

echo "== Rust tests (workspace: unit, property, conformance, end-to-end)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --nocapture lets passing tests report, e.g. the Unleash conformance case count.
cargo test --workspace --locked -- --nocapture 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
grep -h "unleash conformance:" "$log" || { echo "FATAL: the Unleash conformance suite did not run" >&2; exit 1; }
# Only cargo's summaries count: tests print timelines with "1 failed analyses" in them.
passed=$(grep -h '^test result:' "$log" | grep -o '[0-9]* passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -h '^test result:' "$log" | grep -o '[0-9]* failed' | awk '{s+=$1} END {print s+0}')
echo "rust tests: ${passed} passed, ${failed} failed"
[ "$status" -eq 0 ] || exit "$status"

# The API contract: schemathesis (installed with pip) against the server binary that
# `cargo test` built, on a free loopback port with an embedded store in a temp dir.
echo "== API contract: schemathesis against a live server (scripts/schemathesis.sh)"
scripts/schemathesis.sh "${CARGO_TARGET_DIR:-target}/debug/switchyard-server"
