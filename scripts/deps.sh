#!/usr/bin/env bash
# Install the Debian packages graft needs, only those that are missing.
# Usage: scripts/deps.sh [build|test|all]   (default: all)
set -euo pipefail
build_pkgs=(build-essential pkg-config libdnnl-dev libhdf5-dev libpng-dev libjpeg62-turbo-dev
            libcurl4-openssl-dev libssl-dev libjson-c-dev libarchive-dev zlib1g-dev
            libopenblas-dev   # libopenblas-dev: BLAS + LAPACK (dsyevd) for graft probe
            help2man          # help2man: the man pages, from the text of --help
            libcairo2-dev libprotobuf-c-dev protobuf-c-compiler   # the report's charts; TensorBoard event files
            libonnx-dev)      # libonnx-dev: /usr/include/onnx/onnx.proto, the ONNX reader is generated from it
test_pkgs=(python3 python3-torch python3-torchvision python3-h5py python3-numpy
           darknet time qemu-user clang libclang-rt-dev libomp-dev python3-venv python3-dev
           chromium python3-websocket openmpi-bin libopenmpi-dev)
# clang + libclang-rt-dev (libFuzzer, sanitizers) + libomp-dev: make fuzz (fuzz/) and the ThreadSanitizer
# build of make test (libomp's Archer makes OpenMP visible to TSan); python3-venv: bench/peers.sh's
# $B/peers-venv; python3-dev: Python.h for torch.compile there; darknet: its cfgs in /usr/share/darknet/cfg for
# tests/test_darknet.c and a peer for gen_darknet.py; time: /usr/bin/time -v for bench/bench_recipe.sh;
# chromium (+ DevTools over python3-websocket): tests/test_report.sh; Open MPI: make test builds $(B)-mpi/
# (make MPI=1) for tests/test_mpi.sh
# python3-onnx: tests/fixtures/gen_onnx.py edits exported models (float16, typed fields, external data,
# malformed files) and tests/test_onnx.sh exports torchvision models with it
test_pkgs+=(python3-onnx)
# python3-opencv: tests/test_onnx_export.sh runs graft's ONNX exports with OpenCV's dnn module
test_pkgs+=(python3-opencv)
want=("${build_pkgs[@]}")
case "${1:-all}" in
  build) ;;
  test|all) want+=("${test_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "deps: missing Debian packages, and not root (no sudo to install them):" >&2
        echo "  apt-get install ${missing[*]}" >&2
        exit 1
    fi
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
