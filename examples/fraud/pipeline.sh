#!/usr/bin/env bash
# Rebuild the fraud example end to end: data -> features -> models.
#   generate.py  synthetic transactions            -> build/transactions.csv, build/cards.csv
#   features.py  point-in-time training features   -> build/training_base.csv
#                online snapshot                   -> data/features/card_{profile,activity}.{csv,parquet}
#   train.py     fti-serve transform + training    -> models/fraud/{1,2}/, models/fraud/state.toml
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
