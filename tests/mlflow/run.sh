#!/usr/bin/env bash
# The MLflow registry-source tests (tests/mlflow/test_mlflow_registry.py, and
# test_mlflow_auth.py with `--app-name basic-auth`): a real `mlflow server` (pinned in
# requirements.txt; SQLite backend store, local artifact store, loopback port) is
# fti-serve's registry. Prepares .venv-mlflow from requirements.txt when
# it is missing or out of date, then runs pytest with it. Needs a built fti-serve:
# FTI_SERVE_BIN, default target/debug/fti-serve.
set -euo pipefail
cd "$(dirname "$0")/../.."

HERE=tests/mlflow
VENV=.venv-mlflow
# shellcheck source=tests/venv.sh
. tests/venv.sh
prepare_venv "$VENV" "$HERE/requirements.txt" mlflow
echo "== MLflow Model Registry as fti-serve's registry (pytest)"
export FTI_SERVE_BIN="${FTI_SERVE_BIN:-$PWD/target/debug/fti-serve}"
exec "$VENV/bin/pytest" -q -p no:cacheprovider --tb=short "$HERE"
