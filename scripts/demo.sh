#!/usr/bin/env bash
# The whole product on one machine: a canary release that is promoted, then one that
# the orchestrator rolls back by itself. Starts, on free loopback ports, the flag
# server, checkout v1 (stable) and v2 (canary, with its new code path behind the
# `new-checkout` flag), HAProxy in front of them, Prometheus scraping them, the
# orchestrator and a load generator; then
#   release 1 (examples/canary-demo/release-good.yaml): 10 → 50 → 100 %, promoted;
#   reset (all traffic back on v1, flag off) and make v2 fail 20 % of its new-path
#   requests;
#   release 2 (release-bad.yaml): the same ramp, rolled back by itself.
# Follow both in the console (its URL and the token to sign in with are printed at
# the start): Releases shows each one live. With --keep the demo stays up after the
# two releases, for the browser, until Ctrl-C.
# Everything it starts is stopped when it ends (or on Ctrl-C). Needs the Debian
# packages haproxy and prometheus (installed when run as root or with sudo).
# See examples/canary-demo/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=examples/canary-demo
started=$SECONDS
KEEP=false
case "${1:-}" in
  "") ;;
  --keep) KEEP=true ;;
  *) echo "usage: $0 [--keep]   (--keep: stay up for the console after the releases, until Ctrl-C)" >&2; exit 2 ;;
esac

# binary → Debian package
PROCESSES="haproxy:haproxy prometheus:prometheus curl:curl"

ensure_processes() {
  local missing=()
  for entry in $PROCESSES; do
    command -v "${entry%%:*}" >/dev/null || missing+=("${entry#*:}")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null && sudo="sudo -n"; }
    if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
      echo "== installing Debian packages: ${missing[*]} (the demo starts its own instances)"
      { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"; } \
        || echo "apt-get could not install ${missing[*]}" >&2
      # Packages may start system services; the demo never uses them.
      for package in "${missing[@]}"; do $sudo service "$package" stop 2>/dev/null || true; done
    fi
  fi
  for entry in $PROCESSES; do
    command -v "${entry%%:*}" >/dev/null || {
      echo "FATAL: ${entry%%:*} is missing: install the Debian package ${entry#*:} (this script does when run as root)" >&2
      exit 1
    }
  done
}

echo "== haproxy and prometheus"
ensure_processes
echo "$(haproxy -v | sed -n 1p); $(prometheus --version 2>&1 | sed -n 1p)"

# The whole workspace, as the README builds it: a `-p` subset would resolve other
# feature sets (e.g. the SDK without `grpc`, which the e2e tests enable) and recompile
# a dozen crates that a workspace build already has.
echo "== building the workspace (release; reused as it is after \`cargo build --release --workspace\`)"
cargo build --release --workspace --locked
BIN="${CARGO_TARGET_DIR:-target}/release"
build_done=$SECONDS

# --- processes -------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-demo.XXXXXX")
PIDS=()

# Stops every process it started (each leads its own process group: its children go
# too), gives them 5 s, then kills what is left. Keeps the logs if the demo failed.
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 5))
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  case "$status" in
    0) rm -rf "$WORK" ;;
    130 | 143) rm -rf "$WORK"; echo "demo interrupted; everything it started is stopped" >&2 ;;
    *) echo "demo failed (exit $status); logs kept in $WORK" >&2 ;;
  esac
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME COMMAND...: runs it in the background in a new session (so Ctrl-C reaches
# only this script, which then stops it), output in $WORK/NAME.log. Sets $LAST_PID.
start() {
  local name=$1
  shift
  setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# wait_for NAME PID COMMAND...: polls COMMAND every 0.1 s until it succeeds; fails
# with NAME's log if the process exits or 30 s pass.
wait_for() {
  local name=$1 pid=$2 deadline=$((SECONDS + 30))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "FATAL: $name exited; its log:" >&2
      cat "$WORK/$name.log" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "FATAL: $name not ready within 30 s; its log:" >&2
      cat "$WORK/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

# pick_port VAR: a loopback port nothing listens on, below Linux's ephemeral range
# and not picked before.
USED_PORTS=" "
pick_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 12000))
    case "$USED_PORTS" in *" $port "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      USED_PORTS+="$port "
      printf -v "$1" '%s' "$port"
      return 0
    fi
  done
  echo "FATAL: no free loopback port found" >&2
  exit 1
}

# haproxy_api COMMAND: one command to HAProxy's runtime API (which answers and
# closes); prints the answer. A subshell, so a refused connection only fails it.
haproxy_api() (
  exec 3<>"/dev/tcp/127.0.0.1/$HAPROXY_ADMIN_PORT"
  printf '%s\n' "$1" >&3
  timeout 5 cat <&3
)

# set_weight SERVER WEIGHT: HAProxy answers nothing when it took the new weight.
set_weight() {
  local answer
  answer=$(haproxy_api "set server checkout/$1 weight $2")
  [ -z "$answer" ] || { echo "FATAL: haproxy: set server checkout/$1 weight $2: $answer" >&2; exit 1; }
}

# render TEMPLATE OUT: fills in the {{NAME}} placeholders.
render() {
  sed -e "s/{{HAPROXY_ADMIN_PORT}}/$HAPROXY_ADMIN_PORT/g" \
      -e "s/{{FRONTEND_PORT}}/$FRONTEND_PORT/g" \
      -e "s/{{STABLE_PORT}}/$STABLE_PORT/g" \
      -e "s/{{CANARY_PORT}}/$CANARY_PORT/g" \
      -e "s/{{PROMETHEUS_PORT}}/$PROMETHEUS_PORT/g" "$1" >"$2"
  if grep -q '{{[A-Z_]*}}' "$2"; then
    echo "FATAL: $1 has a placeholder this script does not know: $(grep -o '{{[A-Z_]*}}' "$2" | head -1)" >&2
    exit 1
  fi
}

for var in SERVER_PORT GRPC_PORT STABLE_PORT CANARY_PORT FRONTEND_PORT HAPROXY_ADMIN_PORT PROMETHEUS_PORT ORCHESTRATOR_PORT; do
  pick_port "$var"
done
SERVER="http://127.0.0.1:$SERVER_PORT"
STABLE="http://127.0.0.1:$STABLE_PORT"
CANARY="http://127.0.0.1:$CANARY_PORT"
FRONTEND="http://127.0.0.1:$FRONTEND_PORT"
PROMETHEUS="http://127.0.0.1:$PROMETHEUS_PORT"
export SWITCHYARD_ORCHESTRATOR_URL="http://127.0.0.1:$ORCHESTRATOR_PORT"
ADMIN_TOKEN="demo-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ENV=production
FLAG=new-checkout

# --- the flag server, its environment, the flag and an SDK token -------------------

echo "== flag server on $SERVER (data in $WORK/flags)"
start flag-server "$BIN/switchyard-server" --http-addr "127.0.0.1:$SERVER_PORT" \
  --grpc-addr "127.0.0.1:$GRPC_PORT" --data-dir "$WORK/flags" --admin-token "$ADMIN_TOKEN" \
  --orchestrator-url "$SWITCHYARD_ORCHESTRATOR_URL"
wait_for flag-server "$LAST_PID" curl -fsS "$SERVER/healthz"
echo "   console: $SERVER/console (sign in with the token $ADMIN_TOKEN; Releases follows both releases)"

# admin METHOD PATH [JSON]: the flag server's admin API.
admin() {
  curl -sS --fail-with-body -X "$1" -H "authorization: Bearer $ADMIN_TOKEN" \
    -H 'content-type: application/json' "$SERVER/v1/admin$2" ${3:+--data "$3"}
}
FLAG_OFF='{"key": "new-checkout", "kind": "boolean", "variants": {"on": true, "off": false},
  "off_variant": "off", "default": {"variant": "off"}}'
admin PUT "/envs/$ENV" >/dev/null
admin PUT "/envs/$ENV/flags/$FLAG" "$FLAG_OFF" >/dev/null
SDK_TOKEN=$(admin POST /tokens "{\"name\": \"checkout\", \"kind\": \"sdk\", \"env\": \"$ENV\"}" \
  | sed -n 's/.*"token" *: *"\([^"]*\)".*/\1/p')
[ -n "$SDK_TOKEN" ] || { echo "FATAL: no SDK token from the flag server" >&2; exit 1; }
echo "   environment $ENV, flag $FLAG (on/off, off for everyone), an SDK token for checkout"

# --- the application, its load balancer, its monitoring, the orchestrator ----------

echo "== checkout v1 (stable) on $STABLE, v2 (canary, new code path) on $CANARY"
export CHECKOUT_SERVER_URL="$SERVER" CHECKOUT_SDK_TOKEN="$SDK_TOKEN"
start checkout-v1 "$BIN/checkout" --listen "127.0.0.1:$STABLE_PORT" --version v1
STABLE_PID=$LAST_PID
start checkout-v2 "$BIN/checkout" --listen "127.0.0.1:$CANARY_PORT" --version v2 --new-code
CANARY_PID=$LAST_PID
wait_for checkout-v1 "$STABLE_PID" curl -fsS "$STABLE/healthz"
wait_for checkout-v2 "$CANARY_PID" curl -fsS "$CANARY/healthz"

echo "== haproxy: $FRONTEND → stable 100 / canary 0; runtime API on 127.0.0.1:$HAPROXY_ADMIN_PORT"
render "$DEMO/haproxy.cfg.tmpl" "$WORK/haproxy.cfg"
start haproxy haproxy -f "$WORK/haproxy.cfg" -db
HAPROXY_PID=$LAST_PID
wait_for haproxy "$HAPROXY_PID" haproxy_api "show info"
wait_for haproxy "$HAPROXY_PID" curl -fsS "$FRONTEND/healthz"

echo "== prometheus on $PROMETHEUS, scraping both every second"
render "$DEMO/prometheus.yml.tmpl" "$WORK/prometheus.yml"
start prometheus prometheus --config.file="$WORK/prometheus.yml" \
  --storage.tsdb.path="$WORK/tsdb" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --log.level=warn
PROMETHEUS_PID=$LAST_PID
both_scraped() {
  curl -fsS -G "$PROMETHEUS/api/v1/query" --data-urlencode 'query=sum(up{job="checkout"})' \
    | grep -q '"value":\[[0-9.]*,"2"\]'
}
wait_for prometheus "$PROMETHEUS_PID" both_scraped

echo "== orchestrator on $SWITCHYARD_ORCHESTRATOR_URL"
start orchestrator "$BIN/switchyard-orchestrator" serve --listen "127.0.0.1:$ORCHESTRATOR_PORT" \
  --data-dir "$WORK/orchestrator" --server-url "$SERVER" --admin-token "$ADMIN_TOKEN" --poll-interval 200ms
ORCHESTRATOR_PID=$LAST_PID
wait_for orchestrator "$ORCHESTRATOR_PID" curl -fsS "$SWITCHYARD_ORCHESTRATOR_URL/healthz"

echo "== load: 100 requests/s through haproxy, users user-0 … user-999"
start checkout-load "$BIN/checkout-load" --target "$FRONTEND" --rate 100 --duration 150s --users 1000
LOAD_PID=$LAST_PID

render "$DEMO/release-good.yaml" "$WORK/release-good.yaml"
render "$DEMO/release-bad.yaml" "$WORK/release-bad.yaml"

# --- release 1 ----------------------------------------------------------------------

echo
echo "== release 1: checkout v2 with the new checkout, 10 → 50 → 100 % (examples/canary-demo/release-good.yaml)"
echo "\$ switchyard-orchestrator apply release-good.yaml --wait"
release1=0
"$BIN/switchyard-orchestrator" apply "$WORK/release-good.yaml" --wait --timeout 2m || release1=$?

echo
echo "== reset for the next release: all traffic back on stable, $FLAG off for everyone"
# Stable first: with both at 0 HAProxy would have nowhere to send a request.
set_weight stable 100
set_weight canary 0
admin PUT "/envs/$ENV/flags/$FLAG" "$FLAG_OFF" >/dev/null
echo "== the canary's new code path now fails every fifth request"
curl -fsS -X POST "$CANARY/admin/fail-rate" --data 0.2 >/dev/null

# --- release 2 ----------------------------------------------------------------------

echo
echo "== release 2: the same ramp, now with a failing new checkout (examples/canary-demo/release-bad.yaml)"
echo "\$ switchyard-orchestrator apply release-bad.yaml --wait"
release2=0
"$BIN/switchyard-orchestrator" apply "$WORK/release-bad.yaml" --wait --timeout 2m || release2=$?

# --- summary ------------------------------------------------------------------------

kill -TERM "$LOAD_PID" 2>/dev/null || true
deadline=$((SECONDS + 10))
while kill -0 "$LOAD_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done

weight() { haproxy_api "get weight checkout/$1" | awk '{print $1}'; }
outcome() { case "$1" in 0) echo promoted ;; 1) echo "rolled back" ;; 3) echo "unknown (timed out or lost the orchestrator)" ;; *) echo "failed (exit $1)" ;; esac; }
flag_json=$(admin GET "/envs/$ENV/flags/$FLAG")
if printf '%s' "$flag_json" | grep -q '"enabled" *: *false'; then
  flag_state="killed (serves its off variant to everyone)"
else
  flag_state="enabled"
fi

echo
echo "== summary"
echo "release 1 checkout-good: $(outcome "$release1") (expected: promoted)"
echo "release 2 checkout-bad:  $(outcome "$release2") (expected: rolled back)"
"$BIN/switchyard-orchestrator" history | sed 's/^/  /'
echo "haproxy weights now: stable $(weight stable), canary $(weight canary)"
echo "flag $FLAG: $flag_state"
echo "load: $(tail -1 "$WORK/checkout-load.log")"
echo "took $((SECONDS - build_done)) s (+ $((build_done - started)) s to check the build)"

[ "$release1" = 0 ] && [ "$release2" = 1 ] || exit 1
if [ "$KEEP" = true ]; then
  echo
  echo "== still up for the console: $SERVER/console/releases (token $ADMIN_TOKEN); Ctrl-C stops everything"
  while :; do sleep 3600; done
fi
