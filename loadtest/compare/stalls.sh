#!/usr/bin/env bash
# Stalls on a saturated core: one fti-serve binary on the compare workload (fti-serve.toml:
# both feature groups from Redis on every request, cache off, version 2, drift on), the
# server alone on SERVER_CPUS (default 1), Redis and the load tool on LOAD_CPUS (default 0),
# ROUNDS closed-loop runs of CONCURRENCY clients (default 16) for SECONDS each. Prints each
# run's summary (a stall shows as a large max or as `timeout` errors: the load tool gives
# up on a request after 1 s) and the server's count of requests whose feature stage took
# over 100 ms, the store's own deadline.
#
#   bash loadtest/compare/stalls.sh BIN LOADTEST_BIN [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$1 LOADTEST=$2 SECONDS_=${3:-20} ROUNDS=${4:-3}
SERVER_CPUS=${SERVER_CPUS:-1} LOAD_CPUS=${LOAD_CPUS:-0}
# shellcheck source=loadtest/compare/ab.sh
. loadtest/compare/ab.sh
ab_begin loadtest/compare/out-stalls 18196
compare_setup "$BIN"
cp "$BIN" "$WORK/server"
serve "$WORK/server" "$WORK/config.toml" stalls
for r in $(seq 1 "$ROUNDS"); do
  $(pin "$LOAD_CPUS") "$LOADTEST" --url http://127.0.0.1:18180 --corpus models/fraud/2/golden.jsonl \
    --entities examples/fraud/data/features/card_profile.csv --keys uniform \
    --concurrency "${CONCURRENCY:-16}" --duration "${SECONDS_}s" --warmup 0s --quiet 2>&1 | tee "$OUT/run-$r.txt"
done
curl -s http://127.0.0.1:18180/metrics > "$OUT/metrics.txt"
stop
awk '/^fti_request_stage_seconds_bucket/ && /stage="features"/ && /version="2"/ {
       if ($1 ~ /le="0.1"/) within = $2; if ($1 ~ /le="\+Inf"/) all = $2 }
     END { printf "feature stage over 100 ms: %d of %d requests\n", all - within, all }' "$OUT/metrics.txt"
