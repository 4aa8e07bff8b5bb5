#!/usr/bin/env bash
# Rebuild the fraud example end to end: data -> features -> models.
#   generate.py  synthetic transactions            -> build/transactions.csv, build/cards.csv
#   features.py  point-in-time training features   -> build/training_base.csv
#                online snapshot                   -> data/features/card_{profile,activity}.{csv,parquet}
#   train.py     fti-serve transform + training    -> models/fraud/{1,2}/, models/fraud/state.toml
#   register_mlflow.py (only when MLFLOW_TRACKING_URI is set) -> each version registered in
#                MLflow as model "fraud", the production alias on the version state.toml names
#                (needs the mlflow client: MLFLOW_PYTHON, default .venv-mlflow/bin/python)
# Needs the venv (python3 -m venv .venv && .venv/bin/pip install -r examples/fraud/requirements.txt)
# and an fti-serve binary: FTI_SERVE_BIN, default target/debug/fti-serve (cargo build).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
export FTI_SERVE_BIN="${FTI_SERVE_BIN:-$REPO/target/debug/fti-serve}"
[ -x "$PY" ] || { echo "pipeline: no python at $PY (create the venv, see README.md)" >&2; exit 1; }
[ -x "$FTI_SERVE_BIN" ] || { echo "pipeline: no fti-serve at $FTI_SERVE_BIN (cargo build, or set FTI_SERVE_BIN)" >&2; exit 1; }
cd "$HERE"
"$PY" generate.py
"$PY" features.py
"$PY" train.py
if [ -n "${MLFLOW_TRACKING_URI:-}" ]; then
  MLFLOW_PY="${MLFLOW_PYTHON:-$REPO/.venv-mlflow/bin/python}"
  production=$(sed -n 's/^production = \([0-9]*\)/\1/p' "$REPO/models/fraud/state.toml")
  for dir in "$REPO"/models/fraud/[0-9]*/; do
    v=$(basename "$dir")
    alias_args=()
    [ "$v" = "$production" ] && alias_args=(--alias production)
    "$MLFLOW_PY" register_mlflow.py --tracking-uri "$MLFLOW_TRACKING_URI" --model-name fraud "$dir" "${alias_args[@]}"
  done
fi
