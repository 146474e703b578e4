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

# Key of the kernel build: source package version, config fragment, rustc and bindgen versions, the build script.
kernel_key() {
  {
    dpkg-query -W -f='${Version}' linux-source-6.12
    cat "$REPO/ci/kernel.config" "$REPO/ci/build-kernel.sh"
    "$KRUSTC" --version
    "$KBINDGEN" --version
  } | sha256sum | cut -c1-16
}
kernel_dir() { echo "$CACHE/kernel-$(kernel_key)"; }
