# Shared settings for the ci/ scripts (sourced, not run).
# Slow artefacts (kernel build tree, bindgen) live outside the repository, keyed by their inputs.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${DRBD_RS_CACHE:-/var/cache/drbd-rs}
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
export PATH="$CARGO_BIN:$PATH"
# The kernel's Rust must be built by the distribution rustc that ships matching library sources.
KRUSTC=/usr/bin/rustc
KBINDGEN=$CARGO_BIN/bindgen
KRUST_LIB_SRC=$(ls -d /usr/src/rustc-*/library 2>/dev/null | sort -V | tail -n 1 || true)
KMAKE_VARS=(RUSTC="$KRUSTC" BINDGEN="$KBINDGEN" RUST_LIB_SRC="$KRUST_LIB_SRC" RUSTDOC=/usr/bin/rustdoc)
log() { printf '[ci %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# Kernel flavour: `debug` (tests: lockdep, kmemleak, ...) or `perf` (benchmarks: no debug options).
KFLAVOUR=${DRBD_RS_KERNEL_FLAVOUR:-debug}
case "$KFLAVOUR" in debug|perf) ;; *) echo "DRBD_RS_KERNEL_FLAVOUR must be debug or perf" >&2; exit 2;; esac
# The config fragments of the flavour, in merge order.
kernel_fragments() {
  echo "$REPO/ci/kernel.config"
  if [ "$KFLAVOUR" = debug ]; then echo "$REPO/ci/kernel-debug.config"; fi
}

# Key of the kernel build: source package version, flavour and its config fragments, rustc and
# bindgen versions, the build script.
kernel_key() {
  {
    dpkg-query -W -f='${Version}' linux-source-6.12
    echo "$KFLAVOUR"
    cat $(kernel_fragments) "$REPO/ci/build-kernel.sh"
    "$KRUSTC" --version
    "$KBINDGEN" --version
  } | sha256sum | cut -c1-16
}
kernel_dir() { echo "$CACHE/kernel-$(kernel_key)"; }
# Where drbd.ko is built for the flavour: the debug flavour in kmod/ itself, others in a copy
# (target/kmod-<flavour>/kmod, beside links to the shared sources it includes by `../` paths).
kmod_build_dir() {
  if [ "$KFLAVOUR" = debug ]; then echo "$REPO/kmod"; else echo "$REPO/target/kmod-$KFLAVOUR/kmod"; fi
}
