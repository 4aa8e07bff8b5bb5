#!/usr/bin/env bash
# Side-by-side benchmark of fti-serve and a hand-built Python predictor (issue #7): prepares
# loadtest/compare/.venv from requirements.txt when it is missing or out of date, then runs
# run.py with it. Arguments go to run.py (see --help), e.g.
#   bash loadtest/compare/run.sh --fti-serve target/release/fti-serve --loadtest target/release/fti-loadtest
# `--overload` first: the overload benchmark (overload.py) instead of the comparison.
# `--feast` first: fti-serve reading Feast's Redis online store against `feast serve`
# (feast.py), run with .venv-feast, prepared as tests/feast/run.sh does.
set -euo pipefail
cd "$(dirname "$0")/../.."

HERE=loadtest/compare
if [ "${1:-}" = "--feast" ]; then
  shift
  # The venv of the Feast end-to-end test (tests/feast/run.sh, same logic): Feast 0.67.0
  # with its Redis online store, pinned in tests/feast/requirements.txt.
  VENV=.venv-feast
  REQUIREMENTS=tests/feast/requirements.txt
  if [ ! -x "$VENV/bin/pytest" ] || ! cmp -s "$REQUIREMENTS" "$VENV/requirements.txt"; then
    echo "== preparing $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    cp "$REQUIREMENTS" "$VENV/requirements.txt"
  fi
  exec "$VENV/bin/python" "$HERE/feast.py" "$@"
fi

VENV=$HERE/.venv
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$HERE/requirements.txt" "$VENV/requirements.txt"; then
  echo "== preparing $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  cp "$HERE/requirements.txt" "$VENV/requirements.txt"
fi
SCRIPT=run.py
if [ "${1:-}" = "--overload" ]; then SCRIPT=overload.py; shift; fi
exec "$VENV/bin/python" "$HERE/$SCRIPT" "$@"
