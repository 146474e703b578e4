#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine needs to build and test drbd-rs. Idempotent.
source "$(dirname "$0")/lib.sh"
PKGS=(linux-source-6.12 rustc-web rust-web-src clang llvm lld libclang-dev flex bison bc libelf-dev
      libssl-dev cpio kmod qemu-system-x86 busybox-static e2fsprogs fio drbd-utils dmsetup python3
      rust-web-clippy)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! "$KBINDGEN" --version 2>/dev/null | grep -q '0.69.5'; then
  log "installing bindgen-cli 0.69.5"
  cargo install --locked bindgen-cli@0.69.5
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
mkdir -p "$CACHE"
log "setup done"
