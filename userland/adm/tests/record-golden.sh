#!/bin/sh
# Records tests/golden/*.txt from the real drbdadm (Debian drbd-utils 9.22.0) for every line of
# tests/cases.txt. Run from anywhere: sh userland/adm/tests/record-golden.sh [DRBDADM]
set -e
here=$(cd "$(dirname "$0")" && pwd)
real=${1:-/usr/sbin/drbdadm}
cd "$here/fixtures"
grep -v '^#' "$here/cases.txt" | while read -r conf host args; do
    name=$(printf '%s' "$conf $host $args" | tr -c 'A-Za-z0-9.=-' '_')
    set +e
    # shellcheck disable=SC2086
    # run through PATH: drbdadm then prints the helpers as plain "drbdsetup"/"drbdmeta"
    out=$(PATH="$(dirname "$real"):$PATH" __DRBD_NODE__=$host DRBD_DRIVER_VERSION_OVERRIDE=9.2.12 \
        "$(basename "$real")" -c "$conf" $args 2>/dev/null)
    rc=$?
    set -e
    printf '%s\n## rc=%s\n' "$out" "$rc" | sed "s|$here/fixtures|@DIR@|g" > "$here/golden/$name.txt"
done
