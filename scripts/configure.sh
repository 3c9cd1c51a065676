#!/usr/bin/env bash
# configure.sh — prints the make variables graft's build needs (the Makefile
# keeps them in $(B)/config.mk): compile and link flags from pkg-config, and
# what graft.pc declares for static linking.  Fails, naming the Debian
# package to install, when a dependency is missing: never empty flags.
set -euo pipefail
CC=${CC:-cc}
missing=()
command -v pkg-config >/dev/null || missing+=("pkg-config (the pkg-config program)")
command -v "$CC" >/dev/null || missing+=("build-essential (a C compiler: $CC)")
# pkg-config module -> Debian package
mods=(hdf5:libhdf5-dev libpng:libpng-dev libjpeg:libjpeg62-turbo-dev libcurl:libcurl4-openssl-dev
      json-c:libjson-c-dev libarchive:libarchive-dev zlib:zlib1g-dev libcrypto:libssl-dev
      openblas:libopenblas-dev cairo:libcairo2-dev libprotobuf-c:libprotobuf-c-dev)
command -v protoc-c >/dev/null || missing+=("protobuf-c-compiler (protoc-c: TensorBoard's event messages)")
[ -f "${ONNX_PROTO:-/usr/include/onnx/onnx.proto}" ] || missing+=("libonnx-dev (/usr/include/onnx/onnx.proto: the ONNX reader)")
have=()
if command -v pkg-config >/dev/null; then
    for m in "${mods[@]}"; do
        if pkg-config --exists "${m%%:*}"; then have+=("${m%%:*}"); else missing+=("${m#*:} (pkg-config module ${m%%:*})"); fi
    done
fi
# oneDNN ships no .pc file: look for its header and library with the compiler.
if command -v "$CC" >/dev/null; then
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    printf '#include <oneapi/dnnl/dnnl.h>\nint main(void){return dnnl_version()->major > 0 ? 0 : 1;}\n' > "$tmp/t.c"
    "$CC" "$tmp/t.c" -o "$tmp/t" -ldnnl >/dev/null 2>&1 || missing+=("libdnnl-dev (oneDNN: oneapi/dnnl/dnnl.h, -ldnnl)")
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "graft: error: missing build dependencies:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    echo "install them (Debian/Ubuntu: sudo apt-get install <package>), or run scripts/deps.sh build" >&2
    exit 1
fi
echo "# made by scripts/configure.sh; delete to re-run it"
echo "PKG_CFLAGS := $(pkg-config --cflags "${have[@]}")"
echo "PKG_LIBS := $(pkg-config --libs "${have[@]}") -ldnnl"
# graft.pc: libgraft.a needs these libraries (their shared builds) beside it.
# They go in Libs.private as flat flags rather than Requires.private: with
# Requires.private, `pkg-config --static` would also ask for the private
# libraries of libcurl, libarchive... (nghttp2, rtmp, ssh2), which a static
# libgraft.a linked against shared system libraries never needs.
echo "PKG_LIBS_PRIVATE := $(pkg-config --libs "${have[@]}") -ldnnl -lm -lpthread -lgomp"
