#!/usr/bin/env bash
# Side-by-side benchmark of fti-serve and a hand-built Python predictor (issue #7): prepares
# loadtest/compare/.venv from requirements.txt when it is missing or out of date, then runs
# run.py with it. Arguments go to run.py (see --help), e.g.
#   bash loadtest/compare/run.sh --fti-serve target/release/fti-serve --loadtest target/release/fti-loadtest
# `--overload` first: the overload benchmark (overload.py) instead of the comparison.
# `--feast` first: fti-serve reading Feast's Redis online store against `feast serve`
# (feast.py), run with .venv-feast, prepared as tests/feast/run.sh does.
# `--cluster` first: fti-serve with one Redis against fti-serve with a Redis Cluster of
# 3 primaries (cluster.py).
set -euo pipefail
cd "$(dirname "$0")/../.."

HERE=loadtest/compare
# shellcheck source=tests/venv.sh
. tests/venv.sh
if [ "${1:-}" = "--feast" ]; then
  shift
  # The venv of the Feast end-to-end test: Feast 0.67.0 with its Redis online store,
  # pinned in tests/feast/requirements.txt.
  VENV=.venv-feast
  prepare_venv "$VENV" tests/feast/requirements.txt pytest
  exec "$VENV/bin/python" "$HERE/feast.py" "$@"
fi

VENV=$HERE/.venv
prepare_venv "$VENV" "$HERE/requirements.txt" python
SCRIPT=run.py
if [ "${1:-}" = "--overload" ]; then SCRIPT=overload.py; shift; fi
if [ "${1:-}" = "--cluster" ]; then SCRIPT=cluster.py; shift; fi
exec "$VENV/bin/python" "$HERE/$SCRIPT" "$@"
