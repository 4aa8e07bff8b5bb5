#!/usr/bin/env bash
# Drift monitoring and the prediction log end to end (tests/drift/test_drift.py): a live
# fti-serve serves tests/fixtures/drift, and its drift gauges and log records are checked
# against an independent numpy reference. Uses .venv-test (numpy, pytest), prepared from
# tests/requirements.txt when missing or out of date, as tests/run.sh does. Needs a built
# fti-serve: FTI_SERVE_BIN, default target/debug/fti-serve.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.venv-test
# shellcheck source=tests/venv.sh
. tests/venv.sh
prepare_venv "$VENV" tests/requirements.txt hadolint
export FTI_SERVE_BIN="${FTI_SERVE_BIN:-$PWD/target/debug/fti-serve}"
[ -x "$FTI_SERVE_BIN" ] || { echo "tests/drift/run.sh: no fti-serve at $FTI_SERVE_BIN (cargo build first)" >&2; exit 1; }
echo "== drift monitoring and the prediction log against a numpy reference (pytest)"
exec "$VENV/bin/pytest" -q -p no:cacheprovider --tb=short tests/drift
