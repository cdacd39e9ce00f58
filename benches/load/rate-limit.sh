#!/usr/bin/env bash
# Rate limits under a flood, on loopback (docs/reliability.md): one switchyard-server
# (release build, embedded store in a temporary directory) with a read budget of
# LIMIT per second per token and the default failed-authentication budget (10 a
# second per address).
#
#   1. baseline: a well-behaved client (its own sdk token, 100 OFREP evaluations a
#      second, paced, one keep-alive connection) alone, for DURATION seconds;
#   2. the same client while another token floods the same endpoint with
#      `wrk -t1 -c64` (closed loop: as fast as the server answers);
#   3. a flood of guessed tokens (`wrk -t1 -c16`, 5 s), then the well-behaved
#      client's status codes from the same address right after.
#
# Prints the well-behaved client's p50 / p99 / max latency and status codes in 1 and
# 2, the flood's requests/s and the share answered 429, and the guessing flood's 401
# vs 429 counts (from the server's /metrics). The server is stopped on every exit.
# Needs wrk, curl, jq and python3.
#
# Usage: benches/load/rate-limit.sh [DURATION=10] [LIMIT=1000]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
limit=${2:-1000}
for tool in wrk curl jq python3; do
  command -v "$tool" >/dev/null || { echo "rate-limit: $tool is missing" >&2; exit 1; }
done

cargo build --release -p switchyard-server >&2
port=${SWITCHYARD_BENCH_PORT:-18381}
base="http://127.0.0.1:${port}"
work=$(mktemp -d)
admin="rate-limit-admin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
target/release/switchyard-server --data-dir "$work/data" --http-addr "127.0.0.1:${port}" \
  --grpc-addr "127.0.0.1:$((port + 100))" --admin-token "$admin" \
  --rate-limit-reads "$limit" --log-format json >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
deadline=$((SECONDS + 30))
until curl -sf "$base/readyz" >/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done

api() { curl -sf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' "$@"; }
api -X PUT "$base/v1/admin/envs/bench" >/dev/null
api -X PUT "$base/v1/admin/envs/bench/flags/checkout" -d '{"kind":"boolean","variants":{"on":true,"off":false},"off_variant":"off","default":{"rollout":{"split":[{"variant":"on","weight":50000},{"variant":"off","weight":50000}]}}}' >/dev/null
token() { api -X POST "$base/v1/admin/tokens" -d "{\"name\":\"$1\",\"kind\":\"sdk\",\"env\":\"bench\"}" | jq -r .token; }
polite=$(token polite)
flood=$(token flood)
path=/ofrep/v1/evaluate/flags/checkout
body='{"context":{"targetingKey":"user-1"}}'

# The well-behaved client: RATE requests a second for SECONDS, paced; latency and
# status codes.
well_behaved() {
  python3 - "$port" "$path" "$polite" "$body" "$1" <<'PY'
import http.client, json, sys, time
port, path, token, body, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
rate = 100
conn = http.client.HTTPConnection("127.0.0.1", int(port))
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
latencies, statuses = [], {}
start = time.perf_counter()
n = 0
while time.perf_counter() - start < seconds:
    due = start + n / rate
    now = time.perf_counter()
    if due > now:
        time.sleep(due - now)
    sent = time.perf_counter()
    conn.request("POST", path, body, headers)
    answer = conn.getresponse()
    answer.read()
    latencies.append((time.perf_counter() - sent) * 1000)
    statuses[answer.status] = statuses.get(answer.status, 0) + 1
    n += 1
latencies.sort()
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(json.dumps({"requests": n, "p50_ms": round(pick(0.5), 3), "p99_ms": round(pick(0.99), 3),
                  "max_ms": round(latencies[-1], 3), "statuses": statuses}))
PY
}

metric() {
  curl -s "$base/metrics" | awk -v want="$1" 'index($0, want) == 1 {print $NF; found=1} END {if (!found) print 0}'
}

echo "== 1. well-behaved client alone (${duration}s at 100/s)"
baseline=$(well_behaved "$duration")
echo "$baseline"

echo "== 2. the same while token 'flood' runs wrk -t1 -c64 (limit ${limit}/s per token)"
SWITCHYARD_TOKEN=$flood SWITCHYARD_BODY=$body \
  wrk -t1 -c64 -d"${duration}s" --latency -s benches/load/post.lua "$base$path" >"$work/flood.txt" &
wrk_pid=$!
during=$(well_behaved "$duration")
wait "$wrk_pid"
echo "$during"
flood_rps=$(awk '/Requests\/sec/ {print $2}' "$work/flood.txt")
flood_total=$(awk '/requests in/ {print $1}' "$work/flood.txt")
flood_refused=$(awk '/Non-2xx/ {print $NF}' "$work/flood.txt")
echo "flood: ${flood_rps} requests/s, ${flood_total} requests, ${flood_refused:-0} refused (429)"

echo "== 3. guessed tokens: wrk -t1 -c16 -d5s with a wrong token"
SWITCHYARD_TOKEN=swy_0000_guessed SWITCHYARD_BODY=$body \
  wrk -t1 -c16 -d5s -s benches/load/post.lua "$base$path" >"$work/guess.txt"
guess_total=$(awk '/requests in/ {print $1}' "$work/guess.txt")
unauthorized=$(curl -s "$base/metrics" | awk '/^switchyard_http_requests_total/ && /status="401"/ {s += $NF} END {print s + 0}')
limited=$(metric 'switchyard_rate_limited_total{budget="auth_failures",per="address"}')
after=$(well_behaved 1)
echo "guessing: ${guess_total} requests, ${unauthorized} answered 401, ${limited} answered 429"
echo "the well-behaved client from the same address right after: $after"
