#!/usr/bin/env bash
# The main job (README "Run the main job"): set-up, kernel + module + tools, then a two-node
# QEMU cluster running drbd-rs (tests-qemu/examples/demo.rs).
source "$(dirname "$0")/lib.sh"
cd "$REPO"
./ci/setup.sh
./ci/build-kernel.sh >/dev/null
./ci/build-module.sh >/dev/null
./ci/build-tools.sh
cargo run -q -p tests-qemu --example demo
