#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run calls it):
# formatting, lints, the Dockerfile lint, and every test against a real redis-server that
# the test harness starts on free loopback ports. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# redis-server for the tests; protoc (protobuf-compiler) for the gRPC code generation;
# openssl to make the certificates of the Redis TLS test.
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v protoc >/dev/null 2>&1 || missing="$missing protobuf-compiler"
if [ -n "$missing" ]; then
  echo "== installing$missing (Debian packages)"
  as_root apt-get update -qq
  # shellcheck disable=SC2086
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# Python packages the tests use (pinned): hadolint for the Dockerfile, onnxruntime for its
# libonnxruntime (the ort backend), in a venv of their own.
VENV=.venv-test
if [ ! -x "$VENV/bin/hadolint" ] || ! cmp -s tests/requirements.txt "$VENV/requirements.txt"; then
  echo "== preparing $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$VENV/requirements.txt"
fi

# The ort backend's tests load ONNX Runtime from the pinned wheel's shared library.
ORT_DYLIB_PATH=$(ls "$PWD"/$VENV/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)
export ORT_DYLIB_PATH

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== hadolint Dockerfile"
"$VENV/bin/hadolint" Dockerfile
echo "== cargo test"
cargo test --workspace --all-targets --all-features
echo "== Open Inference Protocol with tritonclient (pytest)"
FTI_SERVE_BIN="$PWD/target/debug/fti-serve" "$VENV/bin/pytest" -q -p no:cacheprovider tests/oip
echo "== the example's on-demand features against an independent reference (pytest)"
"$VENV/bin/pytest" -q -p no:cacheprovider tests/example
