#!/usr/bin/env bash
# onnx_ab.sh — graft against graft on issue 14's ONNX models: two source
# trees (before and after a change to the forward path), each with its built
# $B/libgraft.a, run forward on the same .onnx files (bench/onnx_forward.sh's
# exports) with their rounds taking turns (bench/bench_onnx.c driven by
# bench/peer_onnx_forward.py's Graft class), 2 threads each: batch 1 latency
# (median iteration of the best round, ms) and batch 32 throughput (img/s),
# B over A per line, the load average; then oneDNN's data reorders per image
# at batch 1 (ONEDNN_VERBOSE, weight packing left out), with the CPU's own
# kernels and with oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, where its
# convolutions use blocked layouts).
#   Usage: bench/onnx_ab.sh TREE_A TREE_B [MODEL...]
#   Environment: B [build]  ONNX_BENCH_SECONDS [2]  ONNX_BENCH_ROUNDS [3]  ONNX_BENCH_DIR [build/bench/onnx]
set -eu
A=$(realpath "$1"); Bt=$(realpath "$2"); shift 2
cd "$(dirname "$0")/.."
bd=${B:-build}
DIR=${ONNX_BENCH_DIR:-build/bench/onnx}
MODELS=${*:-resnet50 efficientnet_b0 mobilenet_v3_large}
LIBS="$(pkg-config --libs hdf5 libpng libjpeg libcurl json-c libarchive zlib libprotobuf-c 2>/dev/null) -ldnnl -lcrypto -lm -lpthread -fopenmp"
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
for t in A B; do
  tree=$A; [ $t = B ] && tree=$Bt
  cc -std=c11 -D_GNU_SOURCE -O2 -fopenmp -I"$tree/include" -I"$tree/src" -o "$w/bench_$t" \
     bench/bench_onnx.c "$tree/$bd/libgraft.a" $LIBS
done
/usr/bin/python3 bench/peer_onnx_forward.py export "$DIR" $MODELS 2>&1 | grep -v Warning
echo "onnx_ab: A=$A B=$Bt, $(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$w" "$DIR" "${ONNX_BENCH_SECONDS:-2}" "${ONNX_BENCH_ROUNDS:-3}" $MODELS <<'EOF'
import os, sys
sys.path.insert(0, "bench")
from peer_onnx_forward import Graft, load
w, d, secs, rounds, names = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
print("%-20s %-8s %10s %10s %7s %5s" % ("model", "measure", "A", "B", "B/A", "load"))
for name in names:
    path = os.path.join(d, name + ".onnx")
    g = {t: Graft(os.path.join(w, "bench_" + t), path, 2) for t in "AB"}
    for b in (1, 32):
        best = {}
        for t in "AB":
            g[t].round(b, 0.5)   # warm-up: builds the primitives
        for r in range(rounds):
            for t in "AB":
                it, s, med = g[t].round(b, secs)
                v = med if b == 1 else b * it / s
                if t not in best or (v < best[t] if b == 1 else v > best[t]):
                    best[t] = v
        ratio = best["A"] / best["B"] if b == 1 else best["B"] / best["A"]
        print("%-20s %-8s %10.1f %10.1f %6.2fx %5s" % (name, "b1 ms" if b == 1 else "b32 img/s", best["A"], best["B"],
                                                       ratio, load()), flush=True)
    for t in "AB":
        g[t].close()
EOF
echo "onnx_ab: load after $(cut -d' ' -f1-3 /proc/loadavg)"
echo "data reorders per image at batch 1 (A -> B):"
count() {   # count BIN MODEL ISA ROUNDS: oneDNN reorders executed
  printf 'run 1 0\n%.0s' $(seq "$4") | ONEDNN_VERBOSE=1 ONEDNN_MAX_CPU_ISA=$3 GRAFT_THREADS=2 OMP_WAIT_POLICY=PASSIVE \
    "$1" "$2" 224 | grep -c '^onednn_verbose,exec,cpu,reorder' || true
}
for name in $MODELS; do
  for isa in ALL AVX2; do
    line="  $name ($isa):"
    for t in A B; do
      one=$(count "$w/bench_$t" "$DIR/$name.onnx" $isa 1); four=$(count "$w/bench_$t" "$DIR/$name.onnx" $isa 4)
      line="$line $(( (four - one) / 3 ))"; [ $t = A ] && line="$line ->"
    done
    echo "$line"
  done
done
