#!/usr/bin/env bash
# Runs every test of onair: formatting and lints, the Rust unit and integration tests (real
# WebRTC peers, openh264 + Opus media), interop with an independent stack (aiortc), then the
# browser tests (Debian's Chromium + Playwright).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo build --workspace --bins
cargo test --workspace
echo "== fuzz targets (stable runner)" && cargo run -q -p onair-fuzz --bin fuzz-stable -- --seconds 4
echo "== interop tests (aiortc)"
ONAIR_BIN="$PWD/target/debug/onair" target/interop-venv/bin/python -m pytest -q tests/interop
echo "== browser tests"
ONAIR_BIN="$PWD/target/debug/onair" node --test tests/browser/
