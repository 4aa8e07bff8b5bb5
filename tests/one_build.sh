#!/usr/bin/env bash
# `cargo build --release --workspace` and `cargo run --release` must share one build of the
# server: every dependency of fti-serve must get the same features whether the load tool
# is built beside it (features unify across the workspace) or not. Compares the two
# feature sets with `cargo tree` (no build); fails naming the packages that differ.
set -euo pipefail
cd "$(dirname "$0")/.."

features() { cargo tree "$@" -e normal,build --prefix none -f '{p} [{f}]' | grep -v '(\*)' | sort -u; }
server=$(features -p fti-serve)
names=$(awk '{print $1" "$2}' <<<"$server" | sort -u)
workspace=$(features --workspace | grep -F -f <(echo "$names"))
if ! diff <(echo "$server") <(echo "$workspace") >/dev/null; then
  echo "one build: these dependencies of fti-serve get other features in a workspace build"
  echo "(left: cargo run / -p fti-serve; right: --workspace):"
  diff <(echo "$server") <(echo "$workspace") || true
  exit 1
fi
echo "one build: fti-serve's $(wc -l <<<"$server") packages have the same features in both builds"
