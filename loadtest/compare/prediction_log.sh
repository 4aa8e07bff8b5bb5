#!/usr/bin/env bash
# What the prediction log and drift monitoring cost the answers, and whether the log keeps
# every record. Same run, rounds interleaved so drift on this machine hits every
# configuration alike:
#   old      the binary before the prediction log existed (the request path's A/B)
#   off      now, logging off and drift off
#   drift    now, drift on (the default when a manifest has a [reference]), logging off
#   files    now, drift on, every request logged to rotating files
#   stream   now, drift on, every request logged to a Redis Stream (a redis-server here)
# Each at RATE req/s (open loop) for SECONDS; after each logged run the records in the sink
# are counted against fti_prediction_log_accepted_total. Then saturation (closed loop,
# CONCURRENCY clients): off, drift, files and stream, where the writer (at the lowest CPU
# priority) gets little CPU and the queue overflows: drops counted, answers unaffected.
#
#   bash loadtest/compare/prediction_log.sh OLD_BIN NEW_BIN LOADTEST_BIN [RATE] [SECONDS] [ROUNDS]
#
# PHASES="rate sat" (default) chooses the open-loop and the saturated runs.
# Release builds (cargo build --release -p fti-serve -p fti-loadtest). SERVER_CPUS /
# LOAD_CPUS (taskset lists) pin the server and the load generator apart. Writes
# loadtest/compare/out-log/ and prints tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=$1 NEW=$2 LOADTEST=$3 RATE=${4:-2000} SECONDS_=${5:-15} ROUNDS=${6:-3}
CONCURRENCY=${CONCURRENCY:-32}
# shellcheck source=loadtest/compare/ab.sh
. loadtest/compare/ab.sh
ab_begin loadtest/compare/out-log 18190

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --dir "$WORK" --logfile "$WORK/redis.log" >/dev/null
# The binary from before the prediction log reads neither its config sections nor a
# manifest's [reference] (the example's train.py appends it last): a copy without them.
cp -r models "$WORK/models-old"
for m in "$WORK"/models-old/fraud/[0-9]*/manifest.toml; do
  awk '/^\[reference\]/ { exit } { print }' "$m" > "$m.tmp" && mv "$m.tmp" "$m"
done
base() {  # MODELS: the example config on its own ports, without the sections added since
  sed -e "s#path = \"../models\"#path = \"$1\"#" -e "s#\"../examples#\"$PWD/examples#g" \
      -e 's#127.0.0.1:8080#127.0.0.1:18180#; s#127.0.0.1:8081#127.0.0.1:18181#' \
      -e '/^# The prediction log and drift monitoring/,$d' config/example.toml
}
write_config() {  # NAME MODE
  local file="$WORK/$1/config.toml"
  mkdir -p "$WORK/$1"
  if [ "$2" = old ]; then base "$WORK/models-old" > "$file"; else base "$PWD/models" > "$file"; fi
  case $2 in
    old) ;;
    off) printf '\n[drift]\nenabled = false\n' >> "$file" ;;
    drift) ;;
    files) printf '\n[prediction_log]\nenabled = true\n[prediction_log.files]\ndir = "%s"\n' "$WORK/$1/log" >> "$file" ;;
    stream) printf '\n[prediction_log]\nenabled = true\n[prediction_log.stream]\nurl = "redis://127.0.0.1:%s"\nkey = "bench:{model}"\n' \
              "$REDIS_PORT" >> "$file" ;;
  esac
  echo "$file"
}

run() {  # BIN MODE LABEL [load flags...]
  local bin=$1 mode=$2 label=$3; shift 3
  local config
  config=$(write_config "$label" "$mode")
  redis-cli -p "$REDIS_PORT" del bench:fraud >/dev/null
  serve "$bin" "$config" "$label"
  $(pin "${LOAD_CPUS:-}") "$LOADTEST" --url http://127.0.0.1:18180 --corpus models/fraud/2/golden.jsonl \
      --entities examples/fraud/data/features/card_profile.csv "$@" --duration "${SECONDS_}s" \
      --warmup 2s --quiet --summary "$OUT/$label.json" > "$OUT/$label.txt" 2>&1
  if [ "$mode" = files ] || [ "$mode" = stream ]; then
    # Every accepted record in the sink: wait (bounded) for the writer to catch up.
    local accepted dropped sink written
    for _ in $(seq 1 100); do
      accepted=$(metric fti_prediction_log_accepted_total)
      written=$(metric "fti_prediction_log_written_total{sink=\"$mode\"}")
      [ "${written:-0}" = "${accepted:-0}" ] && break
      sleep 0.1
    done
    dropped=$(metric 'fti_prediction_log_dropped_total{sink="queue"}')
    if [ "$mode" = files ]; then sink=$(cat "$WORK/$label"/log/*.jsonl | wc -l); else sink=$(redis-cli -p "$REDIS_PORT" xlen bench:fraud); fi
    echo "{\"accepted\": ${accepted:-0}, \"dropped_queue\": ${dropped:-0}, \"in_sink\": $sink}" > "$OUT/$label.count.json"
  fi
  stop
}

PHASES=${PHASES:-rate sat}
[[ " $PHASES " == *" rate "* ]] && for r in $(seq 1 "$ROUNDS"); do
  run "$OLD" old "old-r$r" --rate "$RATE"
  run "$NEW" off "off-r$r" --rate "$RATE"
  run "$NEW" drift "drift-r$r" --rate "$RATE"
  run "$NEW" files "files-r$r" --rate "$RATE"
  run "$NEW" stream "stream-r$r" --rate "$RATE"
done
[[ " $PHASES " == *" sat "* ]] && for r in $(seq 1 "$ROUNDS"); do
  run "$NEW" off "sat-off-r$r" --concurrency "$CONCURRENCY"
  run "$NEW" drift "sat-drift-r$r" --concurrency "$CONCURRENCY"
  run "$NEW" files "sat-files-r$r" --concurrency "$CONCURRENCY"
  run "$NEW" stream "sat-stream-r$r" --concurrency "$CONCURRENCY"
done

python3 loadtest/compare/ab_table.py "$OUT" "$ROUNDS" "At $RATE req/s (open loop):" \
  old="before the prediction log" off="now, log off, drift off" drift="now, drift on, log off" \
  files="now, log to files" stream="now, log to a Redis Stream"
python3 loadtest/compare/ab_table.py "$OUT" "$ROUNDS" "Saturated (closed loop, $CONCURRENCY clients):" \
  sat-off="log off, drift off" sat-drift="drift on, log off" sat-files="log to files" sat-stream="log to a Redis Stream"
