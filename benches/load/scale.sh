#!/usr/bin/env bash
# One server at scale (issue 10, "Scale"): 10 000 flags (each a `groups` rule and an
# `in` constraint serving a 25/75 rollout) and 10 000 concurrent SSE streams. Runs
# benches/propagation/ with one server on the embedded store and reports, one
# `summary ...` line each: the server's VmRSS/VmHWM after seeding, with every client
# connected, and after the writes; the time to connect every client (each receives the
# whole environment as its first event); switchyard_snapshot_compile_seconds (from
# /metrics: the compile at load, and the mean per compile during the writes); and the
# push time, `last_client_ms`: per kill/revive, the time until the last of the clients
# received it (median and max over the writes).
#
# Usage: benches/load/scale.sh [propagation options]   (appended, so they override), e.g.
#   benches/load/scale.sh --writes 10
# Defaults here: --replicas 1 --protocol sse --flags 10000 --clients 10000 --writes 30
# --deadline 30 (a write at this size takes far longer than the 10 s default allows
# to be a useful failure signal).
set -euo pipefail
here=$(dirname "$0")
exec "$here/propagation.sh" --replicas 1 --protocol sse --flags 10000 --clients 10000 \
  --writes 30 --deadline 30 "$@"
