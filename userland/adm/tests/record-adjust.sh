#!/bin/sh
# Records tests/golden-adjust/*.txt from the real drbdadm (Debian drbd-utils 9.22.0) for every line
# of tests/adjust-cases.txt, feeding it the captured `drbdsetup show` output through its
# FAKE_DRBDSETUP_SHOW hook. Run from anywhere: sh userland/adm/tests/record-adjust.sh [DRBDADM]
set -e
here=$(cd "$(dirname "$0")" && pwd)
real=${1:-/usr/sbin/drbdadm}
mkdir -p "$here/golden-adjust"
cd "$here/fixtures"
grep -v '^#' "$here/adjust-cases.txt" | while read -r conf host show args; do
    name=$(printf '%s' "$conf $host $show $args" | tr -c 'A-Za-z0-9.=-' '_')
    set +e
    # shellcheck disable=SC2086
    out=$(PATH="$(dirname "$real"):$PATH" __DRBD_NODE__=$host DRBD_DRIVER_VERSION_OVERRIDE=9.2.12 \
        FAKE_DRBDSETUP_SHOW="$here/fixtures/show/$show" \
        "$(basename "$real")" -c "$conf" $args 2>/dev/null)
    rc=$?
    set -e
    printf '%s\n## rc=%s\n' "$out" "$rc" | sed "s|$here/fixtures|@DIR@|g" > "$here/golden-adjust/$name.txt"
done
