# Shared by the same-run A/B scripts (prediction_log.sh, rollouts.sh, cache_skew.sh,
# binaries.sh, instructions.sh): set up the compare workload's Redis and config, start a
# server on 127.0.0.1:18180 from a config, wait for readiness, stop it, read a metric.
# Source it, then call ab_begin, which sets OUT (where server logs go) and WORK (the
# temporary directory every config lives in). SERVER_CPUS (a taskset list) pins the server, LOAD_CPUS Redis.

# A Redis on REDIS_PORT holding the example's two feature groups (written by BIN), and
# $WORK/config.toml: the compare workload (fti-serve.toml: Redis, cache off) on
# 127.0.0.1:18180 (HTTP) and 18181 (gRPC), reading that Redis.
compare_setup() {  # BIN
  $(pin "${LOAD_CPUS:-}") redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --dir "$WORK" --logfile "$WORK/redis.log" >/dev/null
  local url="redis://127.0.0.1:$REDIS_PORT" group
  for group in card_profile card_activity; do
    "$1" materialize --config loadtest/compare/fti-serve.toml --redis-url "$url" --group "$group" \
      --file "examples/fraud/data/features/$group.parquet" >/dev/null
  done
  sed -e "s#path = \"../../models\"#path = \"$PWD/models\"#" -e "s#redis://127.0.0.1:6379#$url#" \
      -e '0,/"127.0.0.1:0"/ s#"127.0.0.1:0"#"127.0.0.1:18180"#' -e 's#"127.0.0.1:0"#"127.0.0.1:18181"#' \
      loadtest/compare/fti-serve.toml > "$WORK/config.toml"
}

pin() { if [ -n "${1:-}" ]; then echo taskset -c "$1"; fi; }

# Starts a run: OUT emptied, WORK a new temporary directory, REDIS_PORT (optional) the
# script's Redis; on exit ab_end stops what the run started.
ab_begin() {  # OUT_DIR [REDIS_PORT]
  OUT=$1 REDIS_PORT=${2:-}
  rm -rf "$OUT" && mkdir -p "$OUT"
  WORK=$(mktemp -d)
  trap ab_end EXIT
}

# Stops the run's servers and its Redis and removes WORK; AB_KEEP (a command), when set,
# runs first, to save something from WORK.
ab_end() {
  pkill -f "$WORK/" 2>/dev/null || true
  if [ -n "$REDIS_PORT" ]; then redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
  if [ -n "${AB_KEEP:-}" ]; then eval "$AB_KEEP"; fi
  rm -rf "$WORK"
}

serve() {  # BIN CONFIG LABEL [ENV=VALUE...]
  local bin=$1 config=$2 label=$3; shift 3
  env "$@" $(pin "${SERVER_CPUS:-}") "$bin" serve --config "$config" > "$OUT/server-$label.log" 2>&1 &
  for _ in $(seq 1 200); do
    curl -sf http://127.0.0.1:18180/health/ready >/dev/null && return 0
    sleep 0.1
  done
  echo "server $label did not become ready" >&2; cat "$OUT/server-$label.log" >&2; exit 1
}

stop() { pkill -f "$WORK/" || true; while pgrep -f "$WORK/.*config.toml" >/dev/null; do sleep 0.1; done; }

metric() { curl -s http://127.0.0.1:18180/metrics | awk -v s="$1" '$1 == s { print $2 }'; }
