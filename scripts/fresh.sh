#!/usr/bin/env bash
# fresh.sh — the README's quick start on a fresh minimal Debian, in a chroot.
#
#   scripts/fresh.sh demo    # the README's first command (make demo) as the first command
#   scripts/fresh.sh test    # the README's second command (make test; installs PyTorch: slow)
#
# Builds (once, then cached) a minimal root of this machine's Debian release with
# debootstrap --variant=minbase: no make, no compiler, no -dev packages. Clones
# the commit under test (HEAD of this checkout) into it, bind-mounts ../shared
# read-only beside it, and runs, as root inside the chroot, the prerequisite the
# README gives for a minimal Debian (apt-get install make) and then the command.
#
# The mirror is read from this machine's own apt sources. Cache (FRESH_CACHE,
# default /var/tmp/graft-fresh): the bootstrapped root as a tarball and apt's
# downloaded packages, so a later run takes seconds to set up. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-demo}
case "$what" in demo|test) ;; *) echo "usage: $0 [demo|test]" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "fresh.sh: needs root (debootstrap, chroot, mount)" >&2; exit 2; }

repo=$PWD
shared=$(cd .. && pwd)/shared
cache=${FRESH_CACHE:-/var/tmp/graft-fresh}
mkdir -p "$cache/apt-archives"

# --- the release and mirror of this machine (never a host name in the repo)
. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk -v s="$suite" '$1 == "deb" && $3 == s {print $2; exit}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "fresh.sh: no Debian mirror found in /etc/apt/sources.list{,.d}" >&2; exit 1; }

if ! command -v debootstrap >/dev/null; then
    echo "fresh.sh: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; }
fi

tarball="$cache/$suite-minbase.tar"
root=$(mktemp -d "$cache/root.XXXXXX")

# --- cleanup: unmount everything under the root (deepest first), and delete it
# only when /proc/mounts shows nothing mounted under it any more.
mounts_under() { awk -v r="$root" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r; }
cleanup() {
    local m
    for m in $(mounts_under); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    if [ -n "$(mounts_under)" ]; then
        echo "fresh.sh: still mounted under $root, NOT deleting it:" >&2; mounts_under >&2
        return
    fi
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -f "$tarball" ]; then
    echo "== debootstrap --variant=minbase $suite ($mirror), cached as $tarball"
    debootstrap --variant=minbase "$suite" "$root" "$mirror" > "$cache/debootstrap.log" 2>&1 ||
        { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
else
    echo "== unpacking the cached minimal $suite root ($tarball)"
    tar -C "$root" -xf "$tarball"
fi

# --- what a fresh machine has: no make, no compiler (checked, so the run proves something)
for tool in make cc gcc pkg-config; do
    if chroot "$root" /bin/sh -c "command -v $tool" >/dev/null 2>&1; then
        echo "fresh.sh: the minimal root already has $tool: not a fresh machine" >&2; exit 1
    fi
done

# --- the clone, ../shared read-only beside it, DNS, /proc, /dev, a package cache
mkdir -p "$root/work/shared" "$root/dev/shm"
git clone -q --no-hardlinks "$repo" "$root/work/graft"
git -C "$root/work/graft" checkout -q "$(git -C "$repo" rev-parse HEAD)"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
mount --bind "$shared" "$root/work/shared"
mount -o remount,bind,ro "$root/work/shared"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/dev/shm"
mkdir -p "$root/dev/pts" && mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts" 2>/dev/null || true
mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"

# The README's prerequisite for a minimal Debian, then its command.
cmd="apt-get update -q && apt-get install -y -q make && make $what"
echo "== in the fresh root: cd /work/graft && $cmd"
start=$(date +%s)
set +e
env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    TERM=dumb DEBIAN_FRONTEND=noninteractive \
    chroot "$root" /bin/bash -c "cd /work/graft && $cmd" 2>&1 | tee "$cache/last-$what.log" |
    grep -v -E '^(Get:|Selecting|Preparing|Unpacking|Setting up|Processing|\(Reading)' 
rc=${PIPESTATUS[0]}
set -e
echo "== fresh $what: exit $rc after $(( $(date +%s) - start )) s (full log: $cache/last-$what.log)"
if [ "$rc" -eq 0 ] && [ "$what" = demo ] && ! grep -q '^Test accuracy: ' "$cache/last-$what.log"; then
    echo "fresh.sh: make demo exited 0 but printed no test accuracy" >&2; rc=1
fi
exit "$rc"
