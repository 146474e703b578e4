#!/usr/bin/env bash
# Builds drbd.ko against the cached guest kernel of the flavour (lib.sh): kmod/drbd.ko for the
# debug flavour, target/kmod-<flavour>/kmod/drbd.ko (from a copy of kmod/) otherwise. Prints its path.
source "$(dirname "$0")/lib.sh"
KDIR=$("$REPO/ci/build-kernel.sh")
OUT=$(kmod_build_dir)
if [ "$OUT" != "$REPO/kmod" ]; then
  mkdir -p "$OUT"
  for shared in proto genl-spec; do ln -sfn "$REPO/$shared" "$OUT/../$shared"; done
  # Sources only; objects of the other flavour stay behind.
  (cd "$REPO/kmod" && find . -type f \( -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name Kbuild -o -name Makefile \) -print0 |
    xargs -0 cp --parents -u -t "$OUT")
fi
make -C "$OUT" KDIR="$KDIR/src" "${KMAKE_VARS[@]}" >&2
echo "$OUT/drbd.ko"
