#!/usr/bin/env bash
# Builds the guest kernel (bzImage, Rust support, in-tree C DRBD 8.4 as a module) from Debian's
# linux-source-6.12 into "$CACHE/kernel-<key>", in the flavour DRBD_RS_KERNEL_FLAVOUR (lib.sh). Reuses a finished build with the same key.
# Prints the build directory on stdout.
source "$(dirname "$0")/lib.sh"
KDIR=$(kernel_dir)
if [ -f "$KDIR/.done" ]; then
  echo "$KDIR"; exit 0
fi
log "building the $KFLAVOUR kernel into $KDIR (first time for this key; about 15-25 minutes on 2 cores)"
# Built in place (kbuild records absolute paths); an unfinished tree has no .done and is redone.
rm -rf "$KDIR"
mkdir -p "$KDIR"
tar -C "$KDIR" -xf /usr/src/linux-source-6.12.tar.xz
mv "$KDIR"/linux-source-6.12 "$KDIR/src"
cd "$KDIR/src"
make "${KMAKE_VARS[@]}" rustavailable >&2
make "${KMAKE_VARS[@]}" tinyconfig >&2
mapfile -t FRAGMENTS < <(kernel_fragments)
scripts/kconfig/merge_config.sh -m .config "${FRAGMENTS[@]}" >&2
make "${KMAKE_VARS[@]}" olddefconfig >&2
# Fail early if a wanted option did not survive dependency resolution.
bad=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=y|CONFIG_*=m)
    grep -qx "$line" .config || { log "config option lost: $line"; bad=1; } ;;
  esac
done < <(cat "${FRAGMENTS[@]}")
[ $bad = 0 ] || exit 1
make "${KMAKE_VARS[@]}" -j"$(nproc)" bzImage modules >&2
touch "$KDIR/.done"
echo "$KDIR"
