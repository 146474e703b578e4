#!/usr/bin/env bash
# Builds kmod/drbd.ko against the cached test kernel. Prints the module path.
source "$(dirname "$0")/lib.sh"
KDIR=$("$REPO/ci/build-kernel.sh")
make -C "$REPO/kmod" KDIR="$KDIR/src" "${KMAKE_VARS[@]}" >&2
echo "$REPO/kmod/drbd.ko"
