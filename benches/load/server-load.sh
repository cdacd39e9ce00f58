#!/usr/bin/env bash
# Server throughput and latency, Switchyard side by side with Unleash Edge, on loopback.
#
# Both servers get the same 20 toggles, benches/fixtures/unleash-features.json (every
# operator family: the fixture of benches/versus_unleash.rs), or with
# FIXTURE=benches/fixtures/unleash-simple.json 20 mostly plain rollouts and one segment:
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
#   gRPC single   switchyard.v1.Evaluation/Evaluate (SINGLE_FLAG, default `complex`,
#                 or the fixture's last toggle)
#   gRPC bulk     switchyard.v1.Evaluation/EvaluateAll
# each for DURATION seconds with `wrk -tTHREADS -cCONNECTIONS --latency`; gRPC with
# h2load (nghttp2's HTTP/2 load generator: far leaner than a tonic client, which would
# take most of the two cores the server needs), CONNECTIONS concurrent calls on
# GRPC_CHANNELS HTTP/2 connections (default 4), each sending the same pre-encoded
# request frame (written by benches/grpc_load.rs --frame after one checked call).
# gRPC reports errors in trailers under HTTP 200, so each gRPC run also checks that the
# server's evaluation counter grew by exactly the calls h2load saw succeed. h2load
# reports mean latency, not percentiles: benches/load/latency.sh measures tails at set
# rates. wrk, h2load and the servers share the machine's cores. Any non-2xx answer or
# failed call stops the script. Prints a summary: requests/s, p50 and p99 per target
# (gRPC: mean), and the ratios of Switchyard's throughput to Edge's. Both servers are
# stopped on every exit.
#
# Unleash Edge 20.4.1, built from its repository (crates.io stops at 20.1.0):
# UNLEASH_EDGE_BIN, else ~/.cache/switchyard-bench/edge-20.4.1/bin/unleash-edge
# (UNLEASH_EDGE_ROOT overrides the directory), built there when missing with
# `cargo install --path` from UNLEASH_EDGE_SRC (a checkout of the tag
# unleash-edge-v20.4.1) or from a shallow clone of github.com/Unleash/unleash-edge;
# `--ignore-rust-version` (it asks for Rust 1.96; it builds with 1.95), without the S3
# persistence feature (not on the request path). Both servers run with their defaults
# (tokio: one worker thread per CPU). Ports: SWITCHYARD_BENCH_PORT (HTTP, 18181),
# +100 for gRPC, +200 for Edge.
# Needs wrk, h2load, curl and jq (Debian packages wrk, nghttp2-client, curl, jq).
#
# Usage: benches/load/server-load.sh [DURATION=20] [CONNECTIONS=64] [THREADS=1]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-20}
connections=${2:-64}
threads=${3:-1}
channels=${GRPC_CHANNELS:-4}
edge_version=20.4.1
features=${FIXTURE:-benches/fixtures/unleash-features.json}
env_name=bench

die() {
  echo "server-load: $*" >&2
  exit 1
}
for tool in wrk curl jq; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install $tool"
done
command -v h2load >/dev/null || die "h2load is missing: apt-get install nghttp2-client"
[ -f "$features" ] || die "$features is missing"
single_flag=${SINGLE_FLAG:-$(jq -r 'if any(.features[]; .name == "complex") then "complex" else .features[-1].name end' "$features")}
[ $((connections % channels)) -eq 0 ] || die "CONNECTIONS ($connections) must be a multiple of GRPC_CHANNELS ($channels)"

# --- Unleash Edge, installed outside the repository when missing -------------------
edge_bin=${UNLEASH_EDGE_BIN:-}
if [ -z "$edge_bin" ]; then
  edge_root=${UNLEASH_EDGE_ROOT:-$HOME/.cache/switchyard-bench/edge-$edge_version}
  edge_bin=$edge_root/bin/unleash-edge
  if [ ! -x "$edge_bin" ]; then
    edge_src=${UNLEASH_EDGE_SRC:-$edge_root/src}
    if [ ! -d "$edge_src/crates/oss/unleash-edge" ]; then
      echo "== cloning Unleash Edge $edge_version into $edge_src" >&2
      git clone -q --depth 1 --branch "unleash-edge-v$edge_version" \
        https://github.com/Unleash/unleash-edge "$edge_src"
    fi
    echo "== building Unleash Edge $edge_version into $edge_root (up to 40 minutes on 2 cores, once)" >&2
    cargo install --path "$edge_src/crates/oss/unleash-edge" --no-default-features --locked \
      --ignore-rust-version --root "$edge_root"
  fi
fi
[ -x "$edge_bin" ] || die "Unleash Edge not found at $edge_bin (set UNLEASH_EDGE_BIN)"
edge_installed="Unleash Edge ${UNLEASH_EDGE_BIN:+at $edge_bin, expected }$edge_version"

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

# The server's count of gRPC evaluations (`switchyard_evaluations` from /metrics).
grpc_evaluations() {
  curl -fsS "http://127.0.0.1:$port/metrics" |
    awk '/^switchyard_evaluations_total\{/ && /api="grpc"/ && /env="'"$env_name"'"/ {s += $2} END {print s + 0}'
}

declare -A grpc_frame # label → the request frame its run sent

# check_evaluated LABEL H2LOAD_OUTPUT CALLS PER_CALL EVALUATED: a call the server
# answered with an error in its trailers evaluates nothing, so the server's count must
# cover every call h2load counted, and at most the calls it started (those still in
# flight when the time ran out were evaluated but not counted).
check_evaluated() {
  local label=$1 started
  started=$(sed -n 's/^requests: [0-9]* total, \([0-9]*\) started.*/\1/p' "$2")
  [ "$5" -ge $(($3 * $4)) ] && [ "$5" -le $((${started:-$3} * $4)) ] ||
    die "$label: h2load counted $3 calls ($started started), the server evaluated $5 flags ($4 per call)"
}

# run_grpc LABEL METHOD FLAGS_PER_CALL [grpc_load options…]: h2load sends the request
# grpc_load checked and framed.
run_grpc() {
  local label=$1 method=$2 per_call=$3 out frame
  shift 3
  out=$work/grpc-$(tr -c 'a-zA-Z0-9' '_' <<<"$label").txt
  frame=$out.frame
  grpc_frame[$label]=$frame
  echo
  echo "== $label (h2load -c$channels -m$((connections / channels)) -D$duration)"
  SWITCHYARD_TOKEN=$sdk_token SWITCHYARD_CONTEXT=$native_context "$target/release/grpc_load" \
    --addr "127.0.0.1:$grpc_port" --frame "$frame" "$@"
  local before after
  before=$(grpc_evaluations)
  h2load -c"$channels" -m$((connections / channels)) -t1 -D"$duration" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $sdk_token" \
    -d "$frame" "http://127.0.0.1:$grpc_port/switchyard.v1.Evaluation/$method" | tee "$out"
  after=$(grpc_evaluations)
  local rps succeeded failed mean
  rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out")
  succeeded=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$out")
  failed=$(sed -n 's/^requests: .* succeeded, \([0-9]*\) failed, \([0-9]*\) errored.*/\1+\2/p' "$out")
  mean=$(awk '$1 == "time" && $3 == "request:" {print $6}' "$out")
  [ -n "$rps" ] && [ -n "$succeeded" ] && [ -n "$mean" ] || die "$label: could not read h2load's output"
  [ "$((failed))" -eq 0 ] || die "$label: $failed calls failed"
  check_evaluated "$label" "$out" "$succeeded" "$per_call" $((after - before))
  printf '%s\t%.0f\t%s\t%s\n' "$label" "$rps" "$(to_ms "$mean")" "-" >>"$summary"
}

post_lua=benches/load/post.lua
export SWITCHYARD_TOKEN=$sdk_token
SWITCHYARD_BODY=$native_context run_wrk "Switchyard REST bulk ($total_flags flags)" \
  "http://127.0.0.1:$port/v1/evaluate/$env_name" -s "$post_lua"
SWITCHYARD_BODY=$native_context run_wrk "Switchyard REST single ($single_flag)" \
  "http://127.0.0.1:$port/v1/evaluate/$env_name/$single_flag" -s "$post_lua"
SWITCHYARD_BODY="{\"context\":$native_context}" run_wrk "Switchyard OFREP single ($single_flag)" \
  "http://127.0.0.1:$port/ofrep/v1/evaluate/flags/$single_flag" -s "$post_lua"
run_wrk "Edge GET /api/frontend" "http://127.0.0.1:$edge_port/api/frontend?$edge_query" \
  -H "Authorization: $edge_token"
SWITCHYARD_TOKEN=$edge_token SWITCHYARD_AUTH_SCHEME="" SWITCHYARD_BODY=$unleash_context \
  run_wrk "Edge POST /api/frontend" "http://127.0.0.1:$edge_port/api/frontend" -s "$post_lua"
run_grpc "Switchyard gRPC Evaluate ($single_flag)" Evaluate 1 --flag "$single_flag"
run_grpc "Switchyard gRPC EvaluateAll ($total_flags flags)" EvaluateAll "$total_flags" --all

# --- latency at set rates -----------------------------------------------------------
# PRODUCT.md's latency bar is p99 at 70 % of peak throughput, which a closed-loop
# generator cannot show (wrk at full speed measures queueing). h2load holds a rate
# (--rps per connection) and logs every request (--log-file: status and microseconds
# from sending to the end of the answer), from which p50/p99/p99.9 are computed, at
# LATENCY_FRACTIONS (default "50 70 90") percent of each target's peak measured above,
# for LATENCY_DURATION seconds (default 10) each; LATENCY_DURATION=0 skips this part.
# REST over HTTP/1.1 on $connections connections, gRPC on $channels HTTP/2 connections.
latency_duration=${LATENCY_DURATION:-10}
latency=$work/latency
: >"$latency"

# The peak of LABEL measured above (req/s).
peak_of() {
  awk -F'\t' -v l="$1" '$1 == l {print $2}' "$summary"
}

# at_rates LABEL CLIENTS PER_CALL [h2load options…] URL: PER_CALL is the flags a gRPC
# call evaluates (0 for the HTTP/1.1 targets, whose status codes h2load checks).
at_rates() {
  local label=$1 clients=$2 per_call=$3 peak
  shift 3
  peak=$(peak_of "$label")
  [ -n "$peak" ] || die "no peak measured for $label"
  for fraction in ${LATENCY_FRACTIONS:-50 70 90}; do
    local rate=$((peak * fraction / 100)) log=$work/rate.log out=$work/rate.out before after
    local per_client=$(((rate + clients - 1) / clients))
    echo "== $label at $fraction % of $peak req/s: $per_client req/s on each of $clients connections"
    [ "$per_call" -eq 0 ] || before=$(grpc_evaluations)
    rm -f "$log"
    h2load -c"$clients" -t1 -D"$latency_duration" --rps="$per_client" --log-file="$log" "$@" >"$out" ||
      die "$label: h2load failed: $(cat "$out")"
    local count bad
    count=$(wc -l <"$log")
    bad=$(awk -F'\t' '$2 < 200 || $2 > 299' "$log" | wc -l)
    [ "$bad" -eq 0 ] || die "$label: $bad answers were not successful at $fraction %"
    if [ "$per_call" -gt 0 ]; then
      after=$(grpc_evaluations)
      check_evaluated "$label" "$out" "$count" "$per_call" $((after - before))
    fi
    cut -f3 "$log" | sort -n | awk -v label="$label" -v f="$fraction" -v target="$rate" -v d="$latency_duration" '
      { v[NR] = $1 }
      function at(p,  i) { i = int((p * NR + 99999) / 100000); if (i < 1) i = 1; return v[i] / 1000 }
      END { printf "%s\t%s\t%d\t%.0f\t%.3f\t%.3f\t%.3f\n", label, f, target, NR / d, at(50000), at(99000), at(99900) }' >>"$latency"
    tail -1 "$latency"
  done
}

if [ "$latency_duration" -gt 0 ]; then
  body=$work/body.json
  echo
  echo "== latency at ${LATENCY_FRACTIONS:-50 70 90} % of each peak, ${latency_duration}s each (h2load --rps)"
  printf '%s' "$native_context" >"$body"
  rest_headers=(-H "authorization: Bearer $sdk_token" -H "content-type: application/json")
  at_rates "Switchyard REST bulk ($total_flags flags)" "$connections" 0 --h1 -d "$body" \
    "${rest_headers[@]}" "http://127.0.0.1:$port/v1/evaluate/$env_name"
  at_rates "Switchyard REST single ($single_flag)" "$connections" 0 --h1 -d "$body" \
    "${rest_headers[@]}" "http://127.0.0.1:$port/v1/evaluate/$env_name/$single_flag"
  at_rates "Edge GET /api/frontend" "$connections" 0 --h1 -H "authorization: $edge_token" \
    "http://127.0.0.1:$edge_port/api/frontend?$edge_query"
  grpc_headers=(-H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $sdk_token")
  for method in Evaluate EvaluateAll; do
    if [ "$method" = Evaluate ]; then
      label="Switchyard gRPC Evaluate ($single_flag)" per_call=1
    else
      label="Switchyard gRPC EvaluateAll ($total_flags flags)" per_call=$total_flags
    fi
    at_rates "$label" "$channels" "$per_call" -m$((connections / channels)) -d "${grpc_frame[$label]}" \
      "${grpc_headers[@]}" "http://127.0.0.1:$grpc_port/switchyard.v1.Evaluation/$method"
  done
fi

# --- summary ------------------------------------------------------------------------
echo
[ -z "$disagreement" ] || echo "== NOTE: the servers disagreed on: $disagreement"
echo "== summary: ${duration}s per target, $connections connections (gRPC: concurrent calls on $channels channel(s)), wrk -t$threads; load now: $(uptime | sed 's/.*load average: //')"
awk -F'\t' '
  { label[NR] = $1; rps[NR] = $2; p50[NR] = $3; p99[NR] = $4 }
  $1 ~ /^Switchyard REST bulk/ { ours = $2 }
  $1 ~ /^Switchyard gRPC Evaluate \(/ { grpc_one = $2 }
  $1 ~ /^Switchyard gRPC EvaluateAll/ { grpc_all = $2 }
  $1 ~ /^Edge GET/ { edge_get = $2 }
  $1 ~ /^Edge POST/ { edge_post = $2 }
  END {
    printf "| %-46s | %9s | %16s | %8s |\n", "target", "req/s", "p50 ms (h2: mean)", "p99 ms"
    printf "|%s|%s|%s|%s|\n", "------------------------------------------------", "-----------", "------------------", "----------"
    for (i = 1; i <= NR; i++)
      printf "| %-46s | %9d | %16.3f | %8s |\n", label[i], rps[i], p50[i], p99[i]
    if (edge_get > 0) {
      printf "ratio Switchyard REST bulk / Edge GET /api/frontend:     %.2f\n", ours / edge_get
      printf "ratio Switchyard gRPC EvaluateAll / Edge GET:            %.2f\n", grpc_all / edge_get
      printf "ratio Switchyard gRPC Evaluate (one) / Edge GET:         %.2f\n", grpc_one / edge_get
    }
    if (edge_post > 0) printf "ratio Switchyard REST bulk / Edge POST /api/frontend:    %.2f\n", ours / edge_post
  }' "$summary"
if [ -s "$latency" ]; then
  echo
  echo "== latency at set rates (h2load --rps; from sending to the end of the answer)"
  awk -F'\t' '
    BEGIN {
      printf "| %-46s | %4s | %8s | %8s | %7s | %7s | %8s |\n", "target", "% of peak", "rate", "achieved", "p50 ms", "p99 ms", "p99.9 ms"
      print "|---|---|---|---|---|---|---|"
    }
    { printf "| %-46s | %4s | %8d | %8d | %7.3f | %7.3f | %8.3f |\n", $1, $2, $3, $4, $5, $6, $7 }' "$latency"
fi
