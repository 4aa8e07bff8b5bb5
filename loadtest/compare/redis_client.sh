#!/usr/bin/env bash
# The Redis client on the request path, same run: the multiplexed client (one connection,
# every request handed to its driver task and back) against the pooled one (each request
# writes and reads on its own task, src/features/redis_pool.rs). The compare workload:
# fti-serve.toml (Redis, feature cache off), the example's features materialized into a
# redis-server started here, version 2 (LightGBM). At RATE req/s (open loop) and saturated
# (closed loop, CONCURRENCY clients), rounds interleaved.
#
#   bash loadtest/compare/redis_client.sh FTI_SERVE_BIN LOADTEST_BIN [RATE] [SECONDS] [ROUNDS]
#
# Release builds. SERVER_CPUS / LOAD_CPUS (taskset lists) pin the server and the load
# generator apart (Redis floats). Writes loadtest/compare/out-redis-client/ and prints tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$1 LOADTEST=$2 RATE=${3:-2000} SECONDS_=${4:-15} ROUNDS=${5:-3}
CONCURRENCY=${CONCURRENCY:-32}
OUT=loadtest/compare/out-redis-client
rm -rf "$OUT" && mkdir -p "$OUT"
WORK=$(mktemp -d)
REDIS_PORT=18191
trap 'pkill -f "$WORK/" 2>/dev/null || true; redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
# shellcheck source=loadtest/compare/ab.sh
. loadtest/compare/ab.sh

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --dir "$WORK" --logfile "$WORK/redis.log" >/dev/null
URL="redis://127.0.0.1:$REDIS_PORT"
for group in card_profile card_activity; do
  "$BIN" materialize --config loadtest/compare/fti-serve.toml --redis-url "$URL" --group "$group" \
    --file "examples/fraud/data/features/$group.parquet" >/dev/null
done
sed -e "s#path = \"../../models\"#path = \"$PWD/models\"#" -e "s#redis://127.0.0.1:6379#$URL#" \
    -e 's#"127.0.0.1:0"#"127.0.0.1:18180"#' loadtest/compare/fti-serve.toml > "$WORK/config.toml"
sed -i '0,/127.0.0.1:18180/! s#127.0.0.1:18180#127.0.0.1:18181#' "$WORK/config.toml"

run() {  # CLIENT LABEL [load flags...]
  local client=$1 label=$2; shift 2
  serve "$BIN" "$WORK/config.toml" "$label" "FTI__STORE__REDIS__CLIENT=$client"
  $(pin "${LOAD_CPUS:-}") "$LOADTEST" --url http://127.0.0.1:18180 --corpus models/fraud/2/golden.jsonl \
      --entities examples/fraud/data/features/card_profile.csv "$@" --duration "${SECONDS_}s" \
      --warmup 2s --quiet --summary "$OUT/$label.json" > "$OUT/$label.txt" 2>&1
  stop
}

for r in $(seq 1 "$ROUNDS"); do
  run multiplexed "multiplexed-r$r" --rate "$RATE"
  run pooled "pooled-r$r" --rate "$RATE"
done
for r in $(seq 1 "$ROUNDS"); do
  run multiplexed "sat-multiplexed-r$r" --concurrency "$CONCURRENCY"
  run pooled "sat-pooled-r$r" --concurrency "$CONCURRENCY"
done
python3 loadtest/compare/ab_table.py "$OUT" "$ROUNDS" "At $RATE req/s (open loop), Redis, cache off:" \
  multiplexed="multiplexed client" pooled="pooled client"
python3 loadtest/compare/ab_table.py "$OUT" "$ROUNDS" "Saturated (closed loop, $CONCURRENCY clients), Redis, cache off:" \
  sat-multiplexed="multiplexed client" sat-pooled="pooled client"
