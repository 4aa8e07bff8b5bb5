#!/usr/bin/env bash
# Side-by-side benchmark of fti-serve and a hand-built Python predictor (issue #7): prepares
# loadtest/compare/.venv from requirements.txt when it is missing or out of date, then runs
# run.py with it. Arguments go to run.py (see --help), e.g.
#   bash loadtest/compare/run.sh --fti-serve target/release/fti-serve --loadtest target/release/fti-loadtest
set -euo pipefail
cd "$(dirname "$0")/../.."

HERE=loadtest/compare
VENV=$HERE/.venv
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$HERE/requirements.txt" "$VENV/requirements.txt"; then
  echo "== preparing $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  cp "$HERE/requirements.txt" "$VENV/requirements.txt"
fi
# `--overload` first: the overload benchmark (overload.py) instead of the comparison.
SCRIPT=run.py
if [ "${1:-}" = "--overload" ]; then SCRIPT=overload.py; shift; fi
exec "$VENV/bin/python" "$HERE/$SCRIPT" "$@"
