#!/usr/bin/env bash
# Runs every test of onair: formatting and lints, the Rust unit and integration tests (real
# WebRTC peers, openh264 + Opus media), interop with an independent stack (aiortc), then the
# browser tests (Debian's Chromium + Playwright).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# A whole run (CI's on a fresh machine) gains little from incremental artifacts, which would
# double the disk the debug build takes; a developer's own `cargo test` keeps them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | awk 'NR == 2 { print "== disk: " $4 " free before the build" }'

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
du -sh target 2>/dev/null | awk '{ print "== disk: target/ holds " $1 }'
