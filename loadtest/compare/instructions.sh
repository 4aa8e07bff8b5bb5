#!/usr/bin/env bash
# Instructions per request, before and after: each fti-serve binary runs under valgrind's
# callgrind on the compare workload (fti-serve.toml: both feature groups from Redis on
# every request, cache off, version 2); callgrind counts nothing until a warm-up load has
# passed (instrumentation off until then), then counts exactly REQUESTS requests sent at RATE req/s, and the total of
# instructions the server executed in user space (every thread) is divided by them.
# Instruction counts do not depend on what else the machine is doing, so small changes on
# the request path show where a timed run on this shared 2-core VM is noise. Kernel work
# (sockets, scheduling) is not counted; the server's background work during the window
# (health checks, the prediction log writer's wake-ups) is, alike for both binaries: keep
# REQUESTS and RATE the same when comparing runs.
#
#   bash loadtest/compare/instructions.sh OLD_BIN NEW_BIN LOADTEST_BIN [REQUESTS] [RATE] [ROUNDS]
#
# OLD_ENV / NEW_ENV (VAR=VALUE, space-separated) set each server's environment, e.g. the
# same binary twice with FTI__STORE__REDIS__CLIENT=redis-rs for one of them.
# Release builds with line tables. Writes loadtest/compare/out-instructions/ and prints a
# table.
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=$1 NEW=$2 LOADTEST=$3 REQUESTS=${4:-2000} RATE=${5:-200} ROUNDS=${6:-2}
# shellcheck source=loadtest/compare/ab.sh
. loadtest/compare/ab.sh
# KEEP_PROFILES=1 keeps callgrind's output files in OUT.
AB_KEEP='if [ -n "${KEEP_PROFILES:-}" ]; then cp "$WORK"/*.out* "$OUT"/ 2>/dev/null || true; fi'
ab_begin loadtest/compare/out-instructions 18195

compare_setup "$NEW"
# A slow (instrumented) server: generous deadlines (run() sets them), so nothing times out.
cp "$OLD" "$WORK/old" && cp "$NEW" "$WORK/new"
SECONDS_=$(python3 -c "print(max(1, round($REQUESTS / $RATE)))")

load() {  # SECONDS SUMMARY
  "$LOADTEST" --url http://127.0.0.1:18180 --corpus models/fraud/2/golden.jsonl \
    --entities examples/fraud/data/features/card_profile.csv --keys uniform --rate "$RATE" \
    --duration "$1s" --warmup 0s --timeout 30s --connections 8 --quiet ${2:+--summary "$2"} >/dev/null
}

run() {  # BIN LABEL ENV
  local bin=$1 label=$2 pid
  # shellcheck disable=SC2086
  env $3 FTI__SERVER__REQUEST_TIMEOUT_MS=30000 FTI__STORE__REDIS__TIMEOUT_MS=30000 \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/$label.%p.out" \
    "$WORK/$bin" serve --config "$WORK/config.toml" > "$OUT/server-$label.log" 2>&1 &
  for _ in $(seq 1 600); do
    curl -sf http://127.0.0.1:18180/health/ready >/dev/null && break
    sleep 0.2
  done
  pid=$(pgrep -f "valgrind.*$WORK/$bin serve" | head -1)
  load 3 ""
  callgrind_control -i on "$pid" >/dev/null 2>&1
  load "$SECONDS_" "$OUT/$label.json"
  callgrind_control -i off "$pid" >/dev/null 2>&1
  kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  # What callgrind counted while instrumentation was on, as it reports at exit.
  python3 - "$OUT/server-$label.log" "$OUT/$label.json" > "$OUT/$label.ir.json" <<'PY'
import json, re, sys
log, summary = sys.argv[1:3]
counted = re.findall(r"Collected : (\d+)", open(log).read())
total = int(counted[-1]) if counted else 0
s = json.load(open(summary))
print(json.dumps({"instructions": total, "requests": s["requests"], "ok": s["ok"]}))
PY
}

for r in $(seq 1 "$ROUNDS"); do
  run old "old-r$r" "${OLD_ENV:-}"
  run new "new-r$r" "${NEW_ENV:-}"
done
python3 - "$OUT" "$ROUNDS" "$OLD" "$NEW" <<'PY'
import json, statistics, sys
from pathlib import Path
out, rounds, old, new = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
print("\n| binary | instructions per request (rounds) | median | requests answered |")
print("|---|---|---:|---|")
med = {}
for key, name in (("old", old), ("new", new)):
    runs = [json.loads((out / f"{key}-r{r}.ir.json").read_text()) for r in range(1, rounds + 1)]
    per = [x["instructions"] / max(x["requests"], 1) for x in runs]
    med[key] = statistics.median(per)
    print(f"| {name} | {' / '.join(f'{p:,.0f}' for p in per)} | {med[key]:,.0f} | "
          + " / ".join(f"{x['ok']}/{x['requests']}" for x in runs) + " |")
print(f"\nafter / before: {med['new'] / med['old']:.3f}")
PY
