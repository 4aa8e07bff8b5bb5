#!/usr/bin/env bash
# The Feast end-to-end test (tests/feast/test_feast_online_store.py): real Feast 0.67.0
# writes its Redis online store (`feast apply` + `feast materialize`), and fti-serve must
# read every feature group as Feast's own get_online_features does. Prepares .venv-feast
# from requirements.txt when it is missing or out of date, then runs pytest with it.
# Needs redis-server on PATH (tests/run.sh installs it) and a built fti-serve:
# FTI_SERVE_BIN, default target/debug/fti-serve.
set -euo pipefail
cd "$(dirname "$0")/../.."

HERE=tests/feast
VENV=.venv-feast
# shellcheck source=tests/venv.sh
. tests/venv.sh
prepare_venv "$VENV" "$HERE/requirements.txt" pytest
command -v redis-server >/dev/null 2>&1 || { echo "tests/feast/run.sh: redis-server is not on PATH" >&2; exit 1; }
echo "== Feast's Redis online store read by fti-serve (pytest)"
export FTI_SERVE_BIN="${FTI_SERVE_BIN:-$PWD/target/debug/fti-serve}"
exec "$VENV/bin/pytest" -q -p no:cacheprovider --tb=short "$HERE"
