#!/usr/bin/env bash
# The whole test suite, from a fresh machine with only the Rust toolchain.
# Installs first whatever the suite needs beyond it (nothing yet: the embedded log needs no
# service), then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== formatting"
cargo fmt --all --check

echo "== lints"
cargo clippy --locked --all-targets -- -D warnings

echo "== tests"
cargo test --locked
