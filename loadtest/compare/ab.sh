# Shared by the same-run A/B scripts (prediction_log.sh, rollouts.sh, cache_skew.sh): start a server on
# 127.0.0.1:18180 from a config, wait for readiness, stop it, read a metric. Source it with
# OUT (where server logs go) and WORK (the temporary directory every config lives in) set.
# SERVER_CPUS (a taskset list) pins the server.

pin() { if [ -n "${1:-}" ]; then echo taskset -c "$1"; fi; }

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
