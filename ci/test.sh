#!/usr/bin/env bash
# The full test run (README "Run the tests"): set-up, kernel + module + tools, formatting,
# lints, unit/property tests, then the QEMU scenario tests in guests.
source "$(dirname "$0")/lib.sh"
cd "$REPO"
log "1/7 set-up"; ./ci/setup.sh
log "2/7 kernel (cached by inputs)"; ./ci/build-kernel.sh >/dev/null
log "3/7 drbd.ko"; ./ci/build-module.sh >/dev/null
log "4/7 formatting"; cargo fmt --all --check; rustfmt --edition 2021 --check kmod/drbd_main.rs
log "5/7 clippy (userland, deny warnings) and kernel lints"
cargo clippy -q --workspace --all-targets -- -D warnings
./ci/check-kmod.sh
log "6/7 unit, property and compatibility tests"; cargo test -q --workspace --exclude tests-qemu
log "7/7 QEMU scenario tests"
./ci/build-tools.sh
cargo test -q -p tests-qemu --no-fail-fast -- --test-threads=1
log "all tests passed"
