#!/usr/bin/env bash
# The benchmark (README "Benchmark"): set-up, kernel + module + tools, then two identical QEMU
# guests running the standard fio jobs on the raw disk, drbd-rs (protocol C and A) and the in-tree
# C DRBD 8.4 (tests-qemu/examples/bench.rs). Prints a table; writes target/bench/result.json.
# `ci/bench.sh profile` runs tests-qemu/examples/profile.rs instead (CPU, context switches and
# packets per I/O on each node).
# Benchmarks run the perf kernel flavour (no lockdep/kmemleak: they would dominate the costs);
# DRBD_RS_KERNEL_FLAVOUR=debug measures the test kernel instead.
# DRBD_RS_KMOD=<path> uses that drbd.ko instead of building one. BENCH_QUICK=1 for a short trial
# run (1 round, 4 s jobs).
export DRBD_RS_KERNEL_FLAVOUR=${DRBD_RS_KERNEL_FLAVOUR:-perf}
source "$(dirname "$0")/lib.sh"
cd "$REPO"
example=${1:-bench}
case "$example" in bench|profile) ;; *) echo "usage: ci/bench.sh [bench|profile]" >&2; exit 2;; esac
./ci/setup.sh
DRBD_RS_KDIR=$(./ci/build-kernel.sh)
export DRBD_RS_KDIR
if [ -z "${DRBD_RS_KMOD:-}" ]; then
  DRBD_RS_KMOD=$(./ci/build-module.sh)
fi
export DRBD_RS_KMOD
./ci/build-tools.sh
log "kernel flavour $KFLAVOUR, module $DRBD_RS_KMOD"
cargo run -q --release -p tests-qemu --example "$example"
