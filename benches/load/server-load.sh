#!/usr/bin/env bash
# Server throughput and latency, Switchyard side by side with Unleash Edge, on loopback.
#
# Both servers get the same 20 toggles, benches/fixtures/unleash-features.json:
# switchyard-server (release build, temporary data dir, a bootstrap admin token) has
# them seeded into environment `bench` by benches/seed_unleash.rs (the Unleash import
# through the admin API); Unleash Edge runs in offline mode from the file itself. The
# bench user is benches/fixtures/unleash-context.json, as in benches/versus_unleash.rs
# (user-42 with ten properties and a fixed currentTime), sent to Edge as an Unleash context and to Switchyard as
# the equivalent native one (switchyard_core::unleash::context: targetingKey = userId,
# top-level fields and properties as string attributes).
#
# Before measuring, both must report the same enabled toggles with the same variant
# names for that user (Edge's GET and POST /api/frontend against Switchyard's bulk
# answer); the script stops otherwise, unless ALLOW_DISAGREEMENT=1, which measures
# anyway and names the toggles they disagree on in the summary. Then, one target at a time, nothing else running:
#   REST bulk     POST /v1/evaluate/bench               (all 20 flags, native context)
#   REST single   POST /v1/evaluate/bench/complex
#   OFREP single  POST /ofrep/v1/evaluate/flags/complex
#   Edge GET      GET  /api/frontend?userId=…&properties[…]=…   (enabled toggles;
#                 what Unleash's frontend SDKs call by default)
#   Edge POST     POST /api/frontend with the Unleash context as JSON
#   gRPC single   switchyard.v1.Evaluation/Evaluate complex   (benches/grpc_load.rs)
#   gRPC bulk     switchyard.v1.Evaluation/EvaluateAll
# each for DURATION seconds with `wrk -tTHREADS -cCONNECTIONS --latency` (gRPC:
# CONNECTIONS concurrent calls on GRPC_CHANNELS HTTP/2 connections, default 1). wrk,
# the servers and the gRPC client share the machine's cores. Any non-2xx answer or
# failed call stops the script. Prints a summary: requests/s, p50 and p99 per target,
# and the ratio of Switchyard's bulk throughput to Edge's. Both servers are stopped
# on every exit.
#
# Unleash Edge: UNLEASH_EDGE_BIN, else ~/.cache/switchyard-bench/edge/bin/unleash-edge
# (UNLEASH_EDGE_ROOT overrides the directory), installed there with `cargo install`
# when missing. Both servers run with their defaults (tokio: one worker thread per
# CPU; Edge 20 no longer has a worker setting). Ports: SWITCHYARD_BENCH_PORT (HTTP, 18181), +100 for gRPC, +200 for Edge.
# Needs wrk, curl and jq (Debian packages of those names).
#
# Usage: benches/load/server-load.sh [DURATION=20] [CONNECTIONS=64] [THREADS=1]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-20}
connections=${2:-64}
threads=${3:-1}
channels=${GRPC_CHANNELS:-1}
edge_version=20.1.0
features=benches/fixtures/unleash-features.json
env_name=bench
single_flag=complex

die() {
  echo "server-load: $*" >&2
  exit 1
}
for tool in wrk curl jq; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install $tool"
done
[ -f "$features" ] || die "$features is missing"

# --- Unleash Edge, installed outside the repository when missing -------------------
edge_bin=${UNLEASH_EDGE_BIN:-}
if [ -z "$edge_bin" ]; then
  edge_root=${UNLEASH_EDGE_ROOT:-$HOME/.cache/switchyard-bench/edge}
  edge_bin=$edge_root/bin/unleash-edge
  # Edge has no --version; cargo records what it installed.
  if ! { [ -x "$edge_bin" ] && grep -qF "\"unleash-edge $edge_version " "$edge_root/.crates.toml" 2>/dev/null; }; then
    echo "== installing Unleash Edge $edge_version into $edge_root (cargo install; this takes several minutes)" >&2
    cargo install unleash-edge --version "$edge_version" --no-default-features --locked --root "$edge_root"
  fi
fi
[ -x "$edge_bin" ] || die "Unleash Edge not found at $edge_bin (set UNLEASH_EDGE_BIN)"
edge_installed=$(grep -o '"unleash-edge [^ ]*' "$(dirname "$edge_bin")/../.crates.toml" 2>/dev/null | tr -d '"' || true)

cargo build --release -q -p switchyard-server -p switchyard-benches --bin switchyard-server --bin seed_unleash --bin grpc_load
target=${CARGO_TARGET_DIR:-target}

# --- the bench user -----------------------------------------------------------------
# The Unleash context benches/versus_unleash.rs uses too.
unleash_context=$(jq -c . benches/fixtures/unleash-context.json)
# The same user as a native context: properties, then the top-level fields, then
# targetingKey = userId (switchyard_core::unleash::context).
native_context=$(jq -c '(.properties // {}) + del(.properties) + {targetingKey: .userId}' <<<"$unleash_context")
# As a query string for GET /api/frontend: top-level fields plain, properties as
# properties[name]=value (brackets percent-encoded), every value URL-encoded.
edge_query=$(jq -r '
  [ (del(.properties) | to_entries[] | "\(.key)=\(.value | @uri)"),
    (.properties | to_entries[] | "properties%5B\(.key)%5D=\(.value | @uri)") ] | join("&")' <<<"$unleash_context")

# --- processes ----------------------------------------------------------------------
port=${SWITCHYARD_BENCH_PORT:-18181}
grpc_port=$((port + 100))
edge_port=$((port + 200))
work=$(mktemp -d)
server_pid=
edge_pid=
cleanup() {
  for pid in $server_pid $edge_pid; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $server_pid $edge_pid; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls `curl ARGS…` until it succeeds, for up to 30 s.
wait_for() {
  local what=$1 log=$2
  shift 2
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$@" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$log" >&2
  die "$what did not answer within 30 s"
}

admin_token="bench-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
SWITCHYARD_ADMIN_TOKEN=$admin_token "$target/release/switchyard-server" --data-dir "$work/data" \
  --http-addr "127.0.0.1:$port" --grpc-addr "127.0.0.1:$grpc_port" >"$work/server.log" 2>&1 &
server_pid=$!
wait_for switchyard-server "$work/server.log" "http://127.0.0.1:$port/healthz"
seed_out=$(SWITCHYARD_ADMIN_TOKEN=$admin_token "$target/release/seed_unleash" \
  --url "http://127.0.0.1:$port" --env "$env_name" "$features")
sdk_token=$(sed -n 's/^SWITCHYARD_SDK_TOKEN=//p' <<<"$seed_out")
[ -n "$sdk_token" ] || die "seed_unleash printed no token"

# Offline mode accepts the tokens it is given (it wants a client token as well).
edge_token="*:development.switchyard-bench"
"$edge_bin" --port "$edge_port" --interface 127.0.0.1 offline --bootstrap-file "$features" \
  --client-tokens "*:development.switchyard-bench-client" --frontend-tokens "$edge_token" \
  >"$work/edge.log" 2>&1 &
edge_pid=$!
wait_for "Unleash Edge" "$work/edge.log" -H "Authorization: $edge_token" "http://127.0.0.1:$edge_port/api/frontend"

# --- agreement: the same enabled toggles and variants for the bench user -----------
ours=$(curl -fsS -X POST -H "Authorization: Bearer $sdk_token" -H "Content-Type: application/json" \
  -d "$native_context" "http://127.0.0.1:$port/v1/evaluate/$env_name" |
  jq -r '.flags | to_entries[] | select(.value.value.feature_enabled) | "\(.key) \(.value.value.name)"' | sort)
edge_get=$(curl -fsS -H "Authorization: $edge_token" "http://127.0.0.1:$edge_port/api/frontend?$edge_query" |
  jq -r '.toggles[] | select(.enabled) | "\(.name) \(.variant.name)"' | sort)
edge_post=$(curl -fsS -X POST -H "Authorization: $edge_token" -H "Content-Type: application/json" \
  -d "$unleash_context" "http://127.0.0.1:$edge_port/api/frontend" |
  jq -r '.toggles[] | select(.enabled) | "\(.name) \(.variant.name)"' | sort)
[ "$edge_get" = "$edge_post" ] || die "Edge answers GET and POST /api/frontend differently:
$edge_get
---
$edge_post"
enabled_count=$(grep -c . <<<"$ours" || true)
total_flags=$(jq '.features | length' "$features")
disagreement=
if [ "$ours" != "$edge_get" ]; then
  echo "Enabled toggles for user-42 (toggle variant), Switchyard | Unleash Edge:" >&2
  diff --side-by-side <(echo "$ours") <(echo "$edge_get") >&2 || true
  disagreement=$(diff <(echo "$ours") <(echo "$edge_get") | sed -n 's/^[<>] \([^ ]*\).*/\1/p' | sort -u | paste -sd, - || true)
  [ "${ALLOW_DISAGREEMENT:-0}" = 1 ] ||
    die "Switchyard and Unleash Edge disagree on the bench user ($disagreement): not measuring (ALLOW_DISAGREEMENT=1 measures anyway)"
  echo "== WARNING: the servers disagree on $disagreement; measuring anyway (ALLOW_DISAGREEMENT=1)" >&2
else
  echo "== both servers agree: $enabled_count of $total_flags toggles enabled for user-42, same variants"
fi
echo "== $(nproc) CPUs; $(uname -sr); Edge: ${edge_installed:-$edge_bin}"
echo "== load before measuring: $(uptime | sed 's/.*load average/load average/')"

# --- measurements -------------------------------------------------------------------
summary=$work/summary
: >"$summary"

# Converts one of wrk's latencies (e.g. 473.00us, 2.27ms, 1.02s) to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n
  }'
}

# run_wrk LABEL URL [wrk options…]
run_wrk() {
  local label=$1 url=$2 out
  shift 2
  out=$work/wrk-$(tr -c 'a-zA-Z0-9' '_' <<<"$label").txt
  echo
  echo "== $label: $url (wrk -t$threads -c$connections -d${duration}s)"
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "$@" "$url" | tee "$out"
  if grep -q "Non-2xx or 3xx responses" "$out"; then
    die "$label: some answers were not successful ($(grep "Non-2xx" "$out"))"
  fi
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p50=$(awk '$1 == "50%" {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  [ -n "$rps" ] && [ -n "$p50" ] && [ -n "$p99" ] || die "$label: could not read wrk's output"
  printf '%s\t%.0f\t%s\t%s\n' "$label" "$rps" "$(to_ms "$p50")" "$(to_ms "$p99")" >>"$summary"
}

# run_grpc LABEL [grpc_load options…]
run_grpc() {
  local label=$1 out
  shift
  out=$work/grpc-$(tr -c 'a-zA-Z0-9' '_' <<<"$label").txt
  echo
  echo "== $label"
  SWITCHYARD_TOKEN=$sdk_token SWITCHYARD_CONTEXT=$native_context "$target/release/grpc_load" \
    --addr "127.0.0.1:$grpc_port" --concurrency "$connections" --channels "$channels" \
    --duration "$duration" "$@" | tee "$out"
  local rps p50 p99
  rps=$(awk '$1 == "throughput" {print $2}' "$out")
  p50=$(awk '$1 == "latency" {print $4}' "$out")
  p99=$(awk '$1 == "latency" {print $8}' "$out")
  [ -n "$rps" ] && [ -n "$p50" ] && [ -n "$p99" ] || die "$label: could not read grpc_load's output"
  printf '%s\t%s\t%s\t%s\n' "$label" "$rps" "$p50" "$p99" >>"$summary"
}

post_lua=benches/load/post.lua
export SWITCHYARD_TOKEN=$sdk_token
SWITCHYARD_BODY=$native_context run_wrk "Switchyard REST bulk (20 flags)" \
  "http://127.0.0.1:$port/v1/evaluate/$env_name" -s "$post_lua"
SWITCHYARD_BODY=$native_context run_wrk "Switchyard REST single ($single_flag)" \
  "http://127.0.0.1:$port/v1/evaluate/$env_name/$single_flag" -s "$post_lua"
SWITCHYARD_BODY="{\"context\":$native_context}" run_wrk "Switchyard OFREP single ($single_flag)" \
  "http://127.0.0.1:$port/ofrep/v1/evaluate/flags/$single_flag" -s "$post_lua"
run_wrk "Edge GET /api/frontend" "http://127.0.0.1:$edge_port/api/frontend?$edge_query" \
  -H "Authorization: $edge_token"
SWITCHYARD_TOKEN=$edge_token SWITCHYARD_AUTH_SCHEME="" SWITCHYARD_BODY=$unleash_context \
  run_wrk "Edge POST /api/frontend" "http://127.0.0.1:$edge_port/api/frontend" -s "$post_lua"
run_grpc "Switchyard gRPC Evaluate ($single_flag)" --flag "$single_flag"
run_grpc "Switchyard gRPC EvaluateAll (20 flags)" --all

# --- summary ------------------------------------------------------------------------
echo
[ -z "$disagreement" ] || echo "== NOTE: the servers disagreed on: $disagreement"
echo "== summary: ${duration}s per target, $connections connections (gRPC: concurrent calls on $channels channel(s)), wrk -t$threads; load now: $(uptime | sed 's/.*load average: //')"
awk -F'\t' '
  { label[NR] = $1; rps[NR] = $2; p50[NR] = $3; p99[NR] = $4 }
  $1 ~ /^Switchyard REST bulk/ { ours = $2 }
  $1 ~ /^Edge GET/ { edge_get = $2 }
  $1 ~ /^Edge POST/ { edge_post = $2 }
  END {
    printf "| %-42s | %9s | %8s | %8s |\n", "target", "req/s", "p50 ms", "p99 ms"
    printf "|%s|%s|%s|%s|\n", "--------------------------------------------", "-----------", "----------", "----------"
    for (i = 1; i <= NR; i++)
      printf "| %-42s | %9d | %8.3f | %8.3f |\n", label[i], rps[i], p50[i], p99[i]
    if (edge_get > 0) printf "ratio Switchyard REST bulk / Edge GET /api/frontend:  %.2f\n", ours / edge_get
    if (edge_post > 0) printf "ratio Switchyard REST bulk / Edge POST /api/frontend: %.2f\n", ours / edge_post
  }' "$summary"
