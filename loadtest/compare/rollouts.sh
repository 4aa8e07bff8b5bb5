#!/usr/bin/env bash
# What a shadow costs the answers: production's latency at a fixed rate with no rollout
# (the binary before rollouts existed, and the current one), and with a shadow on a version
# many times slower (tests/fixtures/slow.onnx behind version 1's manifest), mirroring every
# request or a tenth. Rounds interleave the configurations so drift hits them alike.
#
#   bash loadtest/compare/rollouts.sh OLD_BIN NEW_BIN LOADTEST_BIN [RATE] [SECONDS] [ROUNDS]
#
# SERVER_CPUS / LOAD_CPUS (taskset lists, e.g. 0 and 1) pin the server (and its shadow
# worker) and the load generator apart; unset, both float.
# Binaries: release builds (cargo build --release -p fti-serve -p fti-loadtest; OLD_BIN from
# a commit before rollouts, for the same-run A/B of the request path). The embedded store
# serves the example's features; the server and the load generator share this machine.
# Writes loadtest/compare/out-rollouts/ (summaries, server logs) and prints a table.
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=$1 NEW=$2 LOADTEST=$3 RATE=${4:-1000} SECONDS_=${5:-20} ROUNDS=${6:-3}
# shellcheck source=loadtest/compare/ab.sh
. loadtest/compare/ab.sh
ab_begin loadtest/compare/out-rollouts

cp -r models "$WORK/models"
v4="$WORK/models/fraud/4"
cp -r "$WORK/models/fraud/1" "$v4"
cp tests/fixtures/slow.onnx "$v4/model.onnx"
sed -i "s/^version = 1$/version = 4/; s/^sha256 = .*/sha256 = \"$(sha256sum "$v4/model.onnx" | cut -d' ' -f1)\"/" "$v4/manifest.toml"
sed -e "s#path = \"../models\"#path = \"$WORK/models\"#" -e "s#\"../examples#\"$PWD/examples#g" \
    -e 's#127.0.0.1:8080#127.0.0.1:18180#; s#127.0.0.1:8081#127.0.0.1:18181#' \
    -e 's#^keep_latest = 2#keep_latest = 0#' -e '/^shadow_queue/d' config/example.toml > "$WORK/config.toml"

models() { "$NEW" models --config "$WORK/config.toml" "$@" >/dev/null; }

models promote fraud 1 --reason bench
# Binaries before rollouts cannot read the history entries a shadow writes: each run
# starts from this state.
cp "$WORK/models/fraud/state.toml" "$WORK/state.clean"
run() {  # BIN LABEL [shadow sample]
  cp "$WORK/state.clean" "$WORK/models/fraud/state.toml"
  serve "$1" "$WORK/config.toml" "$2"
  if [ -n "${3:-}" ]; then models shadow start fraud 4 --sample "$3"; sleep 1.5; fi
  $(pin "${LOAD_CPUS:-}") "$LOADTEST" --url http://127.0.0.1:18180 --corpus models/fraud/1/golden.jsonl \
      --entities examples/fraud/data/features/card_profile.csv --rate "$RATE" --duration "${SECONDS_}s" \
      --warmup 3s --summary "$OUT/$2.json" > "$OUT/$2.txt" 2>&1
  curl -s http://127.0.0.1:18180/metrics | grep -E '^fti_shadow_runs_total|fti_request_stage_seconds_sum\{.*stage="inference"|fti_request_stage_seconds_count\{.*stage="inference"' > "$OUT/$2.metrics" || true
  if [ -n "${3:-}" ]; then models shadow stop fraud; fi
  stop
}
for r in $(seq 1 "$ROUNDS"); do
  run "$OLD" "old-r$r"
  run "$NEW" "new-r$r"
  run "$NEW" "shadow1-r$r" 1.0
  run "$NEW" "shadow01-r$r" 0.1
done
# How much slower the shadow's version is: server-side inference time of versions 1 and
# 4 (kept resident by a shadow sampling almost nothing).
serve "$NEW" "$WORK/config.toml" speed
models shadow start fraud 4 --sample 0.000001
sleep 1.5
for v in 1 4; do
  "$LOADTEST" --url http://127.0.0.1:18180 --corpus models/fraud/1/golden.jsonl --version "$v" \
      --rate 200 --duration 5s --summary "$OUT/speed-v$v.json" > "$OUT/speed-v$v.txt" 2>&1
done
curl -s http://127.0.0.1:18180/metrics | grep -E 'fti_request_stage_seconds_(sum|count)\{.*stage="(inference|total)"' > "$OUT/speed.metrics"
models shadow stop fraud
stop
python3 - "$OUT/speed.metrics" <<'PY'
import re, sys
seen = {}
for line in open(sys.argv[1]):
    m = re.match(r'fti_request_stage_seconds_(sum|count)\{.*stage="(\w+)",version="(\d+)"\} (\S+)', line)
    if m:
        seen[(m[3], m[2], m[1])] = float(m[4])
mean = lambda v, st: seen[(v, st, "sum")] / max(seen[(v, st, "count")], 1) * 1e6
print(f"server-side mean per request: version 1 inference {mean('1','inference'):.1f} us, total {mean('1','total'):.1f} us; "
      f"version 4 (the shadow's) inference {mean('4','inference'):.1f} us, total {mean('4','total'):.1f} us "
      f"({mean('4','total') / mean('1','total'):.1f}x the whole request)")
PY
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
from pathlib import Path
out, rounds = Path(sys.argv[1]), int(sys.argv[2])
rows = [("old", "before rollouts (no rollout)"), ("new", "now, no rollout"),
        ("shadow1", "now, shadow on every request"), ("shadow01", "now, shadow on 10%")]
print(f"| configuration | p50 ms (rounds) | p99 ms (rounds) | median p99 ms | errors |")
print("|---|---|---|---:|---:|")
for key, name in rows:
    runs = [json.loads((out / f"{key}-r{r}.json").read_text()) for r in range(1, rounds + 1)]
    p50 = [r["latency_us"]["p50"] / 1000 for r in runs]
    p99 = [r["latency_us"]["p99"] / 1000 for r in runs]
    errors = sum(r.get("error_count", 0) for r in runs)
    print(f"| {name} | {' / '.join(f'{x:.3f}' for x in p50)} | {' / '.join(f'{x:.3f}' for x in p99)} | {statistics.median(p99):.3f} | {errors} |")
PY
