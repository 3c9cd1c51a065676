#!/usr/bin/env bash
# bench_decode.sh — data input throughput, graft vs PIL/torchvision, one run:
# JPEG decode + resize to 224x224 (the real photos), CIFAR records to float,
# CIFAR upscaled to 224 with augmentation (graft's batcher at 0 and 2
# threads vs PIL per record, 1 thread).  Prints images/s and the ratios.
# Usage: bench/bench_decode.sh [seconds per case]   (B=build dir, GRAFT_DATA)
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}
SECS=${1:-${BENCH_SECONDS:-3}}
DATA=${GRAFT_DATA:-$(cd .. && pwd)/shared/data}
LIBS="$(pkg-config --libs hdf5 libpng libjpeg libcurl json-c libarchive zlib 2>/dev/null) -ldnnl -lcrypto -lm -lpthread -fopenmp"
mkdir -p "$B/bench"
[ -f "$B/libgraft.a" ] || make -s B="$B" "$B/libgraft.a"
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -march=x86-64-v2 -fopenmp -Iinclude -Isrc \
   -o "$B/bench/bench_decode" bench/bench_decode.c "$B/libgraft.a" $LIBS
JPEGS=("$DATA/images/dog.jpg" "$DATA/images/eagle.jpg")
BIN="$DATA/cifar-10-batches-bin/data_batch_1.bin"
for f in "${JPEGS[@]}" "$BIN"; do [ -f "$f" ] || { echo "bench_decode: $f absent (set GRAFT_DATA)"; exit 1; }; done
g=$(mktemp); p=$(mktemp); trap 'rm -f "$g" "$p"' EXIT
OMP_NUM_THREADS=1 "$B/bench/bench_decode" "${JPEGS[@]}" -- "$BIN" "$SECS" >"$g"
/usr/bin/python3 bench/peer_decode.py "${JPEGS[@]}" -- "$BIN" "$SECS" >"$p"
get() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
printf '%-36s %12s %12s %8s\n' case graft peer ratio
row() {  # $1 graft case, $2 peer case
  local a b; a=$(get "$1" "$g"); b=$(get "$2" "$p")
  [ -n "$a" ] && [ -n "$b" ] && printf '%-36s %12.1f %12.1f %7.2fx   (vs %s)\n' "$1" "$a" "$b" "$(echo "$a / $b" | bc -l)" "$2"
  return 0
}
row jpeg_decode_resize224 jpeg_decode_resize224_PIL
row jpeg_decode_resize224 jpeg_decode_resize224_torchvision
row cifar_record32 cifar_record32_PIL
row cifar_batcher224_threads0 cifar_batcher224_PIL
row cifar_batcher224_threads2 cifar_batcher224_PIL
grep '^#' "$p" || true
echo "(images/s; graft 1 thread unless threadsN; peer 1 thread)"
