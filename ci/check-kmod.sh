#!/usr/bin/env bash
# Kernel-side lints: rebuilds drbd.ko with the kernel's clippy configuration (CLIPPY=1, which
# adds the kernel's lint set such as undocumented_unsafe_blocks) and fails on any warning.
source "$(dirname "$0")/lib.sh"
KDIR=$("$REPO/ci/build-kernel.sh")
out=$(mktemp)
make -s -C "$REPO/kmod" clean KDIR="$KDIR/src" "${KMAKE_VARS[@]}" >/dev/null 2>&1 || true
if ! make -C "$REPO/kmod" KDIR="$KDIR/src" "${KMAKE_VARS[@]}" CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver >"$out" 2>&1; then
  cat "$out"; log "kmod build with clippy failed"; exit 1
fi
if grep -E '^(warning|error)' "$out"; then
  grep -E -A12 '^(warning|error)' "$out" | head -200
  log "kmod has lint warnings"; exit 1
fi
rm -f "$out"
log "kmod: no compiler or clippy warnings"
