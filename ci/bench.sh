#!/usr/bin/env bash
# The benchmark (README "Benchmark"): set-up, kernel + module + tools, then two identical QEMU
# guests running the standard fio jobs on the raw disk, drbd-rs (protocol C and A) and the in-tree
# C DRBD 8.4 (tests-qemu/examples/bench.rs). Prints a table; writes target/bench/result.json.
# DRBD_RS_KMOD=<path> uses that drbd.ko instead of building kmod/drbd.ko. BENCH_QUICK=1 for a
# short trial run (1 round, 4 s jobs).
source "$(dirname "$0")/lib.sh"
cd "$REPO"
./ci/setup.sh
./ci/build-kernel.sh >/dev/null
if [ -z "${DRBD_RS_KMOD:-}" ]; then
  ./ci/build-module.sh >/dev/null
fi
./ci/build-tools.sh
cargo run -q --release -p tests-qemu --example bench
