#!/usr/bin/env bash
# The whole test suite, from a fresh machine with only the Rust toolchain and Python 3.
# Installs first what the suite needs beyond them (a Python virtual environment with the
# third-party OAuth clients of tests/python), then checks formatting and lints and runs
# every test: the Rust suites, then the third-party clients against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

echo "== python test environment"
venv="$target/python-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt

echo "== formatting"
cargo fmt --all --check

echo "== lints"
cargo clippy --locked --all-targets -- -D warnings

echo "== rust tests"
cargo test --locked

echo "== third-party clients (tests/python)"
WARRANT_BIN="$target/debug/warrant" "$venv/bin/python" -m pytest -q tests/python
