#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/kubernetes (tests/run.sh calls it; it also
# runs alone). Prepares .venv-k8s from tests/kubernetes/requirements.txt when it is missing
# or out of date, then:
#   1. kubernetes-validate --strict against Kubernetes $K8S_VERSION, every manifest file by
#      file (unknown fields fail), and the kustomize rendering too where kubectl exists;
#   2. checkov on the directory (kubernetes framework): any failed check fails; a check may
#      only be skipped by a `checkov.io/skip` annotation that carries its justification;
#   3. check_manifests.py: the manifests agree with each other, the Dockerfile and the
#      server's config (loaded by the server itself when a built fti-serve is at hand:
#      $FTI_SERVE_BIN, else target/debug/fti-serve);
#   4. negative checks, so that each step above is seen to fail: a misspelled field, a
#      writable root file system, a grace period shorter than the drain.
set -euo pipefail
cd "$(dirname "$0")/../.."

HERE=tests/kubernetes
DIR=deploy/kubernetes
K8S_VERSION=1.37.0
VENV=.venv-k8s
# shellcheck source=tests/venv.sh
. tests/venv.sh
prepare_venv "$VENV" "$HERE/requirements.txt" checkov
PY="$VENV/bin/python"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The manifests: every YAML file but the kustomization itself (no Kubernetes schema).
mapfile -t MANIFESTS < <(find "$DIR" -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort)
[ "${#MANIFESTS[@]}" -gt 0 ] || { echo "no manifests in $DIR" >&2; exit 1; }

validate() { "$VENV/bin/kubernetes-validate" --kubernetes-version "$K8S_VERSION" --strict --quiet "$@"; }
# --skip-download: nothing is fetched from checkov's platform (no network needed).
checkov_dir() {
  "$VENV/bin/checkov" --directory "$1" --framework kubernetes --compact --quiet --skip-download
}

echo "== kubernetes-validate --strict (Kubernetes $K8S_VERSION): ${#MANIFESTS[@]} manifests"
validate "${MANIFESTS[@]}"
if command -v kubectl >/dev/null 2>&1; then
  # Where kubectl is installed, its built-in kustomize renders the kustomization (no
  # cluster is contacted) and the result is validated as a whole.
  echo "== kubectl kustomize $DIR | kubernetes-validate --strict"
  kubectl kustomize "$DIR" >"$tmp/rendered.yaml"
  validate "$tmp/rendered.yaml"
else
  echo "== (no kubectl: the kustomize rendering is not checked; check_manifests.py checks its resource list)"
fi

echo "== checkov --framework kubernetes $DIR"
checkov_dir "$DIR"
# Every skip carries a justification: `checkov.io/skip<N>: CKV_ID=why`.
if grep -nE 'checkov\.io/skip[0-9]*:' "$DIR"/*.yaml | grep -vE 'checkov\.io/skip[0-9]*: *CKV2?_K8S_[0-9]+=[^=]{20,}$'; then
  echo "a checkov skip above has no justification (checkov.io/skipN: CKV_ID=why)" >&2
  exit 1
fi

FTI_SERVE_BIN=${FTI_SERVE_BIN:-target/debug/fti-serve}
echo "== check_manifests.py"
if [ -x "$FTI_SERVE_BIN" ]; then
  "$PY" "$HERE/check_manifests.py" --dir "$DIR" --fti-serve "$FTI_SERVE_BIN"
else
  echo "   (no $FTI_SERVE_BIN: the server does not load the ConfigMap's config in this run)"
  "$PY" "$HERE/check_manifests.py" --dir "$DIR"
fi

echo "== negative checks: each validator rejects a broken copy"
broken() { rm -rf "$tmp/k8s" && cp -r "$DIR" "$tmp/k8s"; }
# must_fail WHAT PATTERN COMMAND...: COMMAND fails, and its output names PATTERN (the
# reason it should fail, not another).
must_fail() {
  local what=$1 pattern=$2
  shift 2
  if "$@" >"$tmp/out" 2>&1 || ! grep -q -- "$pattern" "$tmp/out"; then
    echo "FAIL: $what was not rejected for $pattern" >&2
    cat "$tmp/out" >&2
    exit 1
  fi
  echo "   rejected as it should be: $what"
}
broken
sed -i 's/readinessProbe:/readinesProbe:/' "$tmp/k8s/deployment.yaml"
grep -q 'readinesProbe:' "$tmp/k8s/deployment.yaml"
must_fail "a misspelled field (readinesProbe) by kubernetes-validate" readinesProbe validate "$tmp/k8s/deployment.yaml"
broken
sed -i 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' "$tmp/k8s/deployment.yaml"
grep -q 'readOnlyRootFilesystem: false' "$tmp/k8s/deployment.yaml"
must_fail "a writable root file system by checkov" CKV_K8S_22 checkov_dir "$tmp/k8s"
broken
sed -i 's/terminationGracePeriodSeconds: [0-9]*/terminationGracePeriodSeconds: 20/' "$tmp/k8s/deployment.yaml"
grep -q 'terminationGracePeriodSeconds: 20' "$tmp/k8s/deployment.yaml"
must_fail "a grace period shorter than the drain by check_manifests.py" terminationGracePeriodSeconds \
  "$PY" "$HERE/check_manifests.py" --dir "$tmp/k8s"

echo "kubernetes manifests: valid (Kubernetes $K8S_VERSION), checkov clean, consistent"
