#!/usr/bin/env bash
# Builds the userland tools and the guest agent as static binaries for the busybox guests.
# Output: target/x86_64-unknown-linux-gnu/release/{drbdsetup,drbdmeta,drbdadm,drbd-nlraw,drbd-guest-agent}
source "$(dirname "$0")/lib.sh"
cd "$REPO"
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release --target x86_64-unknown-linux-gnu \
  -p drbdsetup -p drbdmeta -p drbdadm -p drbd-guest-agent
