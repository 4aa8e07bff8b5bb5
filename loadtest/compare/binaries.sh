#!/usr/bin/env bash
# Before and after, same run: two fti-serve binaries on the compare workload (fti-serve.toml:
# both feature groups from Redis on every request, cache off, version 2), rounds interleaved
# so the machine's drift hits both alike. Per round and binary:
#   rate  RATE req/s, open loop, SECONDS measured: p50 and p99
#   sat   closed loop, CONCURRENCY clients, SECONDS measured: throughput, and the server's
#         CPU seconds (utime + stime from /proc) per 1,000 requests
# Each phase starts with a 2 s run that is not measured.
#
#   bash loadtest/compare/binaries.sh OLD_BIN NEW_BIN LOADTEST_BIN [RATE] [SECONDS] [ROUNDS]
#
# OLD_ENV / NEW_ENV (VAR=VALUE, space-separated) set each server's environment, e.g. the
# same binary twice with FTI__STORE__REDIS__CLIENT=redis-rs for one of them.
# Release builds. SERVER_CPUS / LOAD_CPUS (taskset lists) pin the server and the load
# generator (and Redis) apart. Writes loadtest/compare/out-binaries/ and prints a table.
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=$1 NEW=$2 LOADTEST=$3 RATE=${4:-2000} SECONDS_=${5:-15} ROUNDS=${6:-3}
CONCURRENCY=${CONCURRENCY:-32}
# shellcheck source=loadtest/compare/ab.sh
. loadtest/compare/ab.sh
ab_begin loadtest/compare/out-binaries 18194
compare_setup "$NEW"
# Copies under WORK, so that stop() finds and ends exactly these servers.
cp "$OLD" "$WORK/old" && cp "$NEW" "$WORK/new"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

load() {  # LABEL SUMMARY [load flags...]
  local label=$1 summary=$2; shift 2
  $(pin "${LOAD_CPUS:-}") "$LOADTEST" --url http://127.0.0.1:18180 --corpus models/fraud/2/golden.jsonl \
      --entities examples/fraud/data/features/card_profile.csv --keys uniform "$@" --quiet \
      ${summary:+--summary "$summary"} > "$OUT/$label.txt" 2>&1
}

run() {  # BIN LABEL ENV
  local bin=$1 label=$2 pid before after
  # shellcheck disable=SC2086
  serve "$WORK/$bin" "$WORK/config.toml" "$label" $3
  pid=$(pgrep -f "$WORK/$bin serve")
  load "rate-$label-warm" "" --rate "$RATE" --duration 2s --warmup 0s
  load "rate-$label" "$OUT/rate-$label.json" --rate "$RATE" --duration "${SECONDS_}s" --warmup 0s
  load "sat-$label-warm" "" --concurrency "$CONCURRENCY" --duration 2s --warmup 0s
  before=$(cpu_ticks "$pid")
  load "sat-$label" "$OUT/sat-$label.json" --concurrency "$CONCURRENCY" --duration "${SECONDS_}s" --warmup 0s
  after=$(cpu_ticks "$pid")
  python3 -c "import json, os, sys; t = os.sysconf('SC_CLK_TCK'); n = json.load(open(sys.argv[3]))['requests']; print(json.dumps({'cpu_s': (int(sys.argv[2]) - int(sys.argv[1])) / t, 'requests': n}))" \
    "$before" "$after" "$OUT/sat-$label.json" > "$OUT/sat-$label.cpu.json"
  stop
}

for r in $(seq 1 "$ROUNDS"); do
  run old "old-r$r" "${OLD_ENV:-}"
  run new "new-r$r" "${NEW_ENV:-}"
done
python3 loadtest/compare/ab_table.py "$OUT" "$ROUNDS" "At $RATE req/s (open loop):" \
  rate-old="before ($OLD)" rate-new="after ($NEW)"
python3 loadtest/compare/ab_table.py "$OUT" "$ROUNDS" "Saturated, $CONCURRENCY clients:" \
  sat-old="before ($OLD)" sat-new="after ($NEW)"
