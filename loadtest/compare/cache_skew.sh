#!/usr/bin/env bash
# The feature cache under skewed traffic, same run: the compare workload (fti-serve.toml:
# Redis, version 2) at RATE req/s, entity IDs drawn uniformly or Zipf-skewed (s = 1.0) over
# the example's 500 cards, with the cache off and with a TTL of TTL_MS for every group.
# Reports latency and the cache's hit rate (fti_feature_cache_lookups_total).
#
#   bash loadtest/compare/cache_skew.sh FTI_SERVE_BIN LOADTEST_BIN [RATE] [SECONDS] [ROUNDS] [TTL_MS]
#
# Release builds. Writes loadtest/compare/out-cache/ and prints a table.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$1 LOADTEST=$2 RATE=${3:-2000} SECONDS_=${4:-15} ROUNDS=${5:-3} TTL_MS=${6:-1000}
# shellcheck source=loadtest/compare/ab.sh
. loadtest/compare/ab.sh
ab_begin loadtest/compare/out-cache 18192
compare_setup "$BIN"

run() {  # TTL_MS KEYS LABEL
  serve "$BIN" "$WORK/config.toml" "$3" "FTI__CACHE__DEFAULT_TTL_MS=$1"
  "$LOADTEST" --url http://127.0.0.1:18180 --corpus models/fraud/2/golden.jsonl \
      --entities examples/fraud/data/features/card_profile.csv --keys "$2" --rate "$RATE" \
      --duration "${SECONDS_}s" --warmup 2s --quiet --summary "$OUT/$3.json" > "$OUT/$3.txt" 2>&1
  local hit miss
  hit=$(curl -s http://127.0.0.1:18180/metrics | awk '/^fti_feature_cache_lookups_total\{.*result="hit"/ { s += $2 } END { print s + 0 }')
  miss=$(curl -s http://127.0.0.1:18180/metrics | awk '/^fti_feature_cache_lookups_total\{.*result="miss"/ { s += $2 } END { print s + 0 }')
  echo "{\"hit\": $hit, \"miss\": $miss}" > "$OUT/$3.cache.json"
  stop
}

for r in $(seq 1 "$ROUNDS"); do
  run 0 uniform "off-uniform-r$r"
  run "$TTL_MS" uniform "ttl-uniform-r$r"
  run 0 zipf "off-zipf-r$r"
  run "$TTL_MS" zipf "ttl-zipf-r$r"
done
python3 loadtest/compare/ab_table.py "$OUT" "$ROUNDS" "At $RATE req/s, Redis, cache TTL $TTL_MS ms or off:" \
  off-uniform="uniform keys, cache off" ttl-uniform="uniform keys, cache on" \
  off-zipf="Zipf keys (s = 1), cache off" ttl-zipf="Zipf keys (s = 1), cache on"
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys
from pathlib import Path
out, rounds = Path(sys.argv[1]), int(sys.argv[2])
print("\ncache hit rate (hits / lookups, per round):")
for key in ("ttl-uniform", "ttl-zipf"):
    rates = []
    for r in range(1, rounds + 1):
        c = json.loads((out / f"{key}-r{r}.cache.json").read_text())
        rates.append(c["hit"] / max(c["hit"] + c["miss"], 1))
    print(f"  {key}: " + " / ".join(f"{x:.3f}" for x in rates))
PY
