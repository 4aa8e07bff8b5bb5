# Sourced by the test and benchmark scripts: `prepare_venv VENV REQUIREMENTS PROBE` makes
# the virtual environment VENV from the pinned REQUIREMENTS when it is missing (PROBE, a
# program it installs, is absent) or was made from another version of the file; otherwise
# it is reused as it is. The copy of the requirements kept in VENV is how it knows.
prepare_venv() {
  local venv=$1 requirements=$2 probe=$3
  if [ ! -x "$venv/bin/$probe" ] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
    echo "== preparing $venv from $requirements"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
  fi
}
