#!/usr/bin/env bash
# The default build runs on any x86-64 CPU: graft predict under qemu-user
# emulating a Nehalem (SSE4.2, no AVX/AVX2/AVX-512) gives the native run's
# answer (the real Tiny Darknet on a real photo when ../shared/data is here).
# A -march=x86-64-v3 build dies there with SIGILL, as it did before.
set -u
bdir=$(dirname "$GRAFT_BIN")
if ! command -v qemu-x86_64 >/dev/null; then echo "SKIP runs_without_avx: qemu-x86_64 absent (Debian qemu-user)"; exit 0; fi
if nm "$GRAFT_BIN" 2>/dev/null | grep -q __asan_init; then echo "SKIP runs_without_avx: sanitizer build (ASan does not run under qemu-user)"; exit 0; fi
if grep -q -- '-march=native' "$bdir/.flags" 2>/dev/null; then echo "SKIP runs_without_avx: a NATIVE=1 build"; exit 0; fi
D=$GRAFT_DATA/weights/darknet-tiny img=$GRAFT_DATA/images/dog.jpg
if [ -f "$D/tiny.weights" ] && [ -f "$img" ]; then
    args=(--base "darknet:$D/tiny.cfg" --weights "$D/tiny.weights" --labels "$D/imagenet1k.shortnames.txt" --top 5 "$img")
else
    img=$(dirname "$0")/fixtures/data/gray8.png
    args=(--base darknet:/usr/share/darknet/cfg/tiny.cfg --weights none --input-size 32x32 --top 5 "$img")
fi
# OMP_WAIT_POLICY set: graft would otherwise re-execute itself, natively, outside qemu
native=$(OMP_WAIT_POLICY=PASSIVE "$GRAFT_BIN" predict "${args[@]}" 2>&1)
old=$(OMP_WAIT_POLICY=PASSIVE qemu-x86_64 -cpu Nehalem "$GRAFT_BIN" predict "${args[@]}" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$old" = "$native" ] && grep -q '%' <<<"$native"; then
    echo "PASS runs_without_avx"
else
    echo "FAIL runs_without_avx (exit $rc)"; diff <(echo "$native") <(echo "$old") | head -10
fi
# graft's own code holds no AVX instruction (oneDNN and OpenBLAS dispatch at run time)
# but in winograd_avx2.o and feats_f16c.o, whose functions run only after a CPU
# check (the Nehalem run above goes through their plain-C twins in winograd.o
# and feats.o)
n=$(objdump -d --no-show-raw-insn "$bdir/libgraft.a" 2>/dev/null |
    awk '/file format/ { skip = ($1 == "winograd_avx2.o:" || $1 == "feats_f16c.o:") } !skip' | grep -cE '%[yz]mm[0-9]')
[ "$n" -eq 0 ] && echo "PASS no_avx_in_default_build" || echo "FAIL no_avx_in_default_build: $n instructions use ymm/zmm"
# and winograd_avx2.o is the file the line above skips (renaming it would hide AVX code)
n=$(objdump -d --no-show-raw-insn "$bdir/libgraft.a" 2>/dev/null |
    awk '/file format/ { keep = ($1 == "winograd_avx2.o:") } keep' | grep -cE '%ymm[0-9]')
[ "$n" -gt 0 ] && echo "PASS avx2_only_in_winograd_avx2" || echo "FAIL avx2_only_in_winograd_avx2: no AVX2 code in winograd_avx2.o"
# and feats_f16c.o holds the F16C conversions
n=$(objdump -d --no-show-raw-insn "$bdir/libgraft.a" 2>/dev/null |
    awk '/file format/ { keep = ($1 == "feats_f16c.o:") } keep' | grep -cE 'vcvtp[sh]2p[hs]')
[ "$n" -gt 0 ] && echo "PASS f16c_only_in_feats_f16c" || echo "FAIL f16c_only_in_feats_f16c: no F16C code in feats_f16c.o"
