#!/usr/bin/env bash
# onnx_forward.sh — issue 14's ONNX benchmark: the same .onnx files
# (torchvision's resnet50, efficientnet_b0, mobilenet_v3_large, convnext_tiny
# and vit_b_16 with random weights, exported by torch.onnx.export at opset 13
# with Debian's PyTorch) run forward by graft (--base onnx:FILE with its
# classifier, bench/bench_onnx.c), ONNX Runtime (every graph optimization)
# and OpenVINO (CPU, LATENCY hint) from the peers' venv (bench/peers.sh
# setup), 2 threads each, taking turns in one run (bench/peer_onnx_forward.py
# drives all three): batch 1 latency (ms) and batch 32 throughput (img/s) at
# 224x224, the versions, the load average and graft's speed over the best
# peer's per line.  A model graft cannot load yet is skipped with its error.
#
# Usage: bench/onnx_forward.sh [MODEL...]
# Environment: B [build]  ONNX_BENCH_THREADS [2]  ONNX_BENCH_SECONDS [2] per round
#   ONNX_BENCH_ROUNDS [3]  PEERS_VENV [$B/peers-venv]  ONNX_BENCH_DIR [$B/bench/onnx] (the exported files)
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}
VENV=${PEERS_VENV:-$B/peers-venv}
DIR=${ONNX_BENCH_DIR:-$B/bench/onnx}
MODELS=${*:-resnet50 efficientnet_b0 mobilenet_v3_large convnext_tiny vit_b_16}
PY=$VENV/bin/python
if ! [ -x "$PY" ] || ! "$PY" -c "import onnxruntime, openvino" 2>/dev/null; then
  echo "onnx_forward: SKIPPED — no ONNX Runtime / OpenVINO in $VENV (bench/peers.sh setup makes it)"; exit 0
fi
LIBS="$(pkg-config --libs hdf5 libpng libjpeg libcurl json-c libarchive zlib libprotobuf-c 2>/dev/null) -ldnnl -lcrypto -lm -lpthread -fopenmp"
mkdir -p "$B/bench"
make -s B="$B" "$B/libgraft.a" >/dev/null
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -fopenmp -Iinclude -Isrc -o "$B/bench/bench_onnx" \
  bench/bench_onnx.c "$B/libgraft.a" $LIBS
/usr/bin/python3 bench/peer_onnx_forward.py export "$DIR" $MODELS 2>&1 | grep -v Warning
echo "onnx_forward: $(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg); graft $(git describe --always --dirty 2>/dev/null)"
"$PY" bench/peer_onnx_forward.py run "$DIR" "$B/bench/bench_onnx" "${ONNX_BENCH_THREADS:-2}" \
  "${ONNX_BENCH_SECONDS:-2}" "${ONNX_BENCH_ROUNDS:-3}" $MODELS
echo "onnx_forward: load after $(cut -d' ' -f1-3 /proc/loadavg)"
