#!/usr/bin/env bash
# Instructions per acquire + release (one task, 8 connections), counted by callgrind:
# each pool at LOW and HIGH iterations, the difference divided by HIGH - LOW, so start-up
# and shut-down cancel out. Needs valgrind. See benches/instructions.rs.
# Per PostgreSQL query (each count starts a throwaway server):
#   POOLS="pg-floor pg-poolwarden" benches/instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LOW=${LOW:-20000}
HIGH=${HIGH:-40000}
cargo bench --bench instructions --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])' > target/instructions.path
BIN=$(cat target/instructions.path)
# Less the instructions of the Prometheus recorder's clock calibration
# (quanta::Clock::new): a loop over clock reads until they agree, a different length each
# run, which would not cancel out between the two counts.
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
count() {
  local total calibration
  total=$(valgrind --tool=callgrind --callgrind-out-file="$OUT" "$BIN" "$1" "$2" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  calibration=$(callgrind_annotate --inclusive=yes "$OUT" 2>/dev/null \
    | awk '/quanta::Clock::new/ { gsub(",", "", $1); print $1; exit }')
  echo $(( total - ${calibration:-0} ))
}
printf "%-20s %14s\n" "pool (${TASKS:-1} task(s))" "instr / op"
for pool in ${POOLS:-floor poolwarden poolwarden-recorder poolwarden-set poolwarden-set-rr bb8 bb8-notest deadpool}; do
  lo=$(count "$pool" "$LOW")
  hi=$(count "$pool" "$HIGH")
  printf '%-20s %14s\n' "$pool" "$(( (hi - lo) / (HIGH - LOW) ))"
done
