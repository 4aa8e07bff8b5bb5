#!/usr/bin/env bash
# The FTI loop end to end (examples/fraud/retrain_from_log.py): fti-serve serves the
# example (embedded store, a temporary copy of models/fraud as the registry) with the
# prediction log written to files; the loop sends LOOP_REQUESTS held-out transactions,
# exports the log, joins labels that arrive later and writes the next version into the
# copy; tests/loop/test_loop.py then checks the export, the join and that the server
# loads the new version and answers with it.
#
#   bash tests/loop/run.sh             # needs target/debug/fti-serve (or FTI_SERVE_BIN)
# Python: .venv-example from examples/fraud/requirements.txt (made when missing).
# LOOP_KEEP=1 keeps the temporary directory (printed) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
export FTI_SERVE_BIN="${FTI_SERVE_BIN:-$REPO/target/debug/fti-serve}"
N="${LOOP_REQUESTS:-600}"
[ -x "$FTI_SERVE_BIN" ] || { echo "loop: no fti-serve at $FTI_SERVE_BIN (cargo build)" >&2; exit 1; }

VENV=.venv-example
# shellcheck source=tests/venv.sh
. tests/venv.sh
prepare_venv "$VENV" examples/fraud/requirements.txt onnxruntime_test
PY="$REPO/$VENV/bin/python"

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ "${LOOP_KEEP:-0}" = 1 ]; then echo "loop: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

echo "== loop: generate.py (held-out transactions to replay)"
"$PY" examples/fraud/generate.py --out "$TMP/build"
mkdir -p "$TMP/registry" "$TMP/log" "$TMP/work"
cp -r models/fraud "$TMP/registry/fraud"

export LOOP_WORK="$TMP/work" LOOP_REGISTRY="$TMP/registry" LOOP_LOG_DIR="$TMP/log"

read -r HTTP GRPC < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
URL="http://127.0.0.1:$HTTP"
cat > "$TMP/config.toml" <<EOF
[server]
http_addr = "127.0.0.1:$HTTP"
grpc_addr = "127.0.0.1:$GRPC"

[registry]
path = "$TMP/registry"
models = ["fraud"]
keep_latest = 2
poll_interval_ms = 200

[store]
kind = "memory"

[[store.memory.files]]
group = "card_profile"
path = "$REPO/examples/fraud/data/features/card_profile.parquet"

[[store.memory.files]]
group = "card_activity"
path = "$REPO/examples/fraud/data/features/card_activity.parquet"

[prediction_log]
enabled = true
sample = 1.0

[prediction_log.files]
dir = "$TMP/log"

[drift]
enabled = true
min_rows = 100

[log]
format = "json"
level = "info"
EOF

echo "== loop: fti-serve on $URL, prediction log in $TMP/log"
"$FTI_SERVE_BIN" serve --config "$TMP/config.toml" > "$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 150); do
  "$FTI_SERVE_BIN" probe "$URL/health/ready" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; echo "loop: fti-serve exited" >&2; exit 1; }
  sleep 0.2
done
"$FTI_SERVE_BIN" probe "$URL/health/ready" >/dev/null || { cat "$TMP/server.log" >&2; echo "loop: not ready after 30 s" >&2; exit 1; }

echo "== loop: retrain_from_log.py ($N requests)"
"$PY" examples/fraud/retrain_from_log.py --url "$URL" --log-dir "$TMP/log" --registry "$TMP/registry" \
  --build "$TMP/build" --work "$TMP/work" -n "$N"
echo "== loop: checks (tests/loop/test_loop.py)"
LOOP_URL="$URL" "$PY" tests/loop/test_loop.py || { tail -n 40 "$TMP/server.log" >&2; exit 1; }
