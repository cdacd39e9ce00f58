#!/usr/bin/env bash
# Instructions per evaluation for the core cases, counted by callgrind (stable where
# the criterion medians drift with the machine's load): each case runs twice, with
# N and 2N iterations, and the difference is divided by N so setup cancels out.
#
# Usage: benches/load/instructions.sh [N]   (default 20000; needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20000}
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
cargo build --profile bench -q -p switchyard-benches --bin instructions
bin=${CARGO_TARGET_DIR:-target}/release/instructions
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Total instructions of one run (callgrind's summary line).
count() {
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" "$1" "$2" >/dev/null 2>"$out/log"
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/log"
}

printf '%-14s %s\n' case "instructions per evaluation"
for case in complex complex-fresh rollout simple disabled unknown all unleash-complex; do
  one=$(count "$case" "$n")
  two=$(count "$case" $((2 * n)))
  printf '%-14s %s\n' "$case" $(( (two - one) / n ))
done
