#!/usr/bin/env bash
# make install as a user runs it: into a temporary prefix, then a C program
# (examples/seed_cifar10.c) and a C++ program (tests/install/consumer.cpp)
# built with `pkg-config graft` against the installed library, shared and
# static; the .so exports only graft.h's API; man pages carry every option of
# --help; DESTDIR staging and make uninstall remove exactly what was installed.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
bdir=$(dirname "$GRAFT_BIN")
if [ ! -f "$bdir/libgraft.so" ]; then echo "SKIP install: no shared library in $bdir (the sanitizer build has none)"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ok() { echo "PASS $1"; }
no() { echo "FAIL $1${2:+: $2}"; }
mk() { env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s -C "$root" --no-print-directory NO_DEPS=1 B="$bdir" "$@"; }

prefix=$tmp/usr
if mk install PREFIX="$prefix" >"$tmp/install.log" 2>&1; then ok install_runs; else no install_runs "$(tail -5 "$tmp/install.log")"; exit 0; fi
version=$("$prefix/bin/graft" --version | awk '{print $2}')
major=${version%%.*}
missing=""
for f in bin/graft lib/libgraft.so.$version lib/libgraft.so.$major lib/libgraft.so lib/libgraft.a include/graft.h \
         lib/pkgconfig/graft.pc share/man/man1/graft.1 share/man/man1/graft-train.1 \
         share/bash-completion/completions/graft; do
    [ -e "$prefix/$f" ] || missing+=" $f"
done
[ -z "$missing" ] && ok install_files || no install_files "missing:$missing"
soname=$(readelf -d "$prefix/lib/libgraft.so.$version" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libgraft.so.$major" ] && ok soname || no soname "got '$soname'"

# one version: graft --version, graft.pc, the soname, the man pages
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
pcv=$(pkg-config --modversion graft 2>&1)
[ "$pcv" = "$version" ] && grep -q "graft $version" "$prefix/share/man/man1/graft-train.1" && ok version_agrees ||
    no version_agrees "graft $version, graft.pc '$pcv'"

# the .so exports exactly the functions graft.h declares
nm -D --defined-only "$prefix/lib/libgraft.so" | awk '$2 ~ /[TWDBRV]/ {print $3}' | sort -u > "$tmp/exported"
grep -oE '\bgr_[a-z0-9_]+ *\(' "$root/include/graft.h" | tr -d ' (' | sort -u > "$tmp/declared"
extra=$(comm -23 "$tmp/exported" "$tmp/declared" | head -5 | tr '\n' ' ')
absent=$(comm -13 "$tmp/exported" "$tmp/declared" | while read -r f; do
    grep -qE "^[a-z].*\b$f *\(" "$root/include/graft.h" && echo "$f"; done | head -5 | tr '\n' ' ')
[ -z "$extra" ] && [ -z "$absent" ] && [ -s "$tmp/exported" ] && ok exports_public_api_only ||
    no exports_public_api_only "exported but not in graft.h: [$extra]; declared but not exported: [$absent]"

# man pages come from --help: every option of every command's --help is in its page
drift=""
for c in fetch info extract predict train eval probe report export cache; do
    for o in $("$prefix/bin/graft" "$c" --help 2>&1 | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sort -u); do
        sed 's/\\-/-/g; s/\\f[BRI]//g' "$prefix/share/man/man1/graft-$c.1" | grep -q -- "$o" || drift+=" $c:$o"
    done
done
[ -z "$drift" ] && ok man_pages_match_help || no man_pages_match_help "missing:$drift"

# a C and a C++ program against the installed library, shared
cfg=/usr/share/darknet/cfg/tiny.cfg
data=$GRAFT_DATA/cifar-10-extra/train_first200_lossless.bin
cflags=$(pkg-config --cflags graft) libs=$(pkg-config --libs graft)
if cc -std=c11 -o "$tmp/seed" "$root/examples/seed_cifar10.c" $cflags $libs 2>"$tmp/cc.log" &&
   c++ -std=c++11 -o "$tmp/consumer" "$root/tests/install/consumer.cpp" $cflags $libs 2>>"$tmp/cc.log"; then
    ok build_against_installed_shared
else
    no build_against_installed_shared "$(head -5 "$tmp/cc.log")"
fi
if readelf -d "$tmp/consumer" 2>/dev/null | grep -q "libgraft.so.$major"; then ok links_soname; else no links_soname; fi
if [ -f "$cfg" ]; then
    out=$(LD_LIBRARY_PATH=$prefix/lib "$tmp/consumer" "$cfg" 2>&1)
    [ $? -eq 0 ] && grep -q "graft $version: .* 1000 outputs, sum 1.0000" <<<"$out" && ok cxx_program_runs_shared ||
        no cxx_program_runs_shared "$out"
else
    echo "SKIP cxx_program_runs_shared: $cfg absent (Debian package darknet)"
fi
if [ -f "$data" ]; then
    out=$(LD_LIBRARY_PATH=$prefix/lib "$tmp/seed" none "$data" 1 2>&1)
    [ $? -eq 0 ] && grep -q '^Test accuracy: 0\.[0-9]*$' <<<"$out" && ok c_example_runs_shared ||
        no c_example_runs_shared "$(tail -3 <<<"$out")"
else
    echo "SKIP c_example_runs_shared: $data absent"
fi

# static: libgraft.a plus the private dependencies graft.pc declares
slibs=$(pkg-config --static --libs graft) slibs=${slibs/-lgraft/}
if c++ -std=c++11 -o "$tmp/consumer_static" "$root/tests/install/consumer.cpp" $cflags \
       "$prefix/lib/libgraft.a" $slibs 2>"$tmp/cc.log"; then
    if readelf -d "$tmp/consumer_static" | grep -q libgraft; then no build_static "still needs libgraft.so"
    else ok build_static; fi
else
    no build_static "$(head -5 "$tmp/cc.log")"
fi
if [ -f "$cfg" ] && [ -x "$tmp/consumer_static" ]; then
    "$tmp/consumer_static" "$cfg" >/dev/null 2>&1 && ok cxx_program_runs_static || no cxx_program_runs_static
fi

# bash completion reads commands and options from the installed graft
comp=$(PATH=$prefix/bin:$PATH bash -c '. "$1"; COMP_WORDS=(graft tr); COMP_CWORD=1; _graft; echo "${COMPREPLY[*]}";
        COMP_WORDS=(graft train --epo); COMP_CWORD=2; _graft; echo "${COMPREPLY[*]}"' _ \
        "$prefix/share/bash-completion/completions/graft" 2>&1)
[ "$comp" = $'train\n--epochs' ] && ok bash_completion || no bash_completion "got: $comp"

# DESTDIR staging keeps the final prefix in graft.pc; uninstall removes exactly what install put
stage=$tmp/stage
mk install DESTDIR="$stage" PREFIX=/opt/graft >/dev/null 2>&1
grep -q '^prefix=/opt/graft$' "$stage/opt/graft/lib/pkgconfig/graft.pc" 2>/dev/null && [ -x "$stage/opt/graft/bin/graft" ] &&
    ok destdir || no destdir
touch "$stage/opt/graft/lib/not-graft.txt"
mk uninstall DESTDIR="$stage" PREFIX=/opt/graft >/dev/null 2>&1
left=$(cd "$stage" && find . \( -type f -o -type l \) | sort | tr '\n' ' ')
[ "$left" = "./opt/graft/lib/not-graft.txt " ] && ok uninstall_exact || no uninstall_exact "left: $left"

# a missing dependency stops the build naming its Debian package (never empty flags)
out=$(cd "$root" && PKG_CONFIG_LIBDIR=$tmp/no-pc PKG_CONFIG_PATH= scripts/configure.sh 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q 'libhdf5-dev' <<<"$out" && grep -q 'libjson-c-dev' <<<"$out" && ! grep -q '^PKG_CFLAGS' <<<"$out" &&
    ok missing_dependency_named || no missing_dependency_named "exit $rc: $out"
out=$(cd "$root" && CC=/nonexistent/cc scripts/configure.sh 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q 'build-essential' <<<"$out" && ok missing_compiler_named || no missing_compiler_named "exit $rc: $out"
