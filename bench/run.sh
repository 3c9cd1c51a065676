#!/usr/bin/env bash
# run.sh — `make bench`: every benchmark, one after the other.  Each step
# builds what it needs against $B/libgraft.a and prints its own table.
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}
LIBS="$(pkg-config --libs hdf5 libpng libjpeg libcurl json-c libarchive zlib 2>/dev/null) -ldnnl -lcrypto -lm -lpthread -fopenmp"
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -march=x86-64-v2 -fopenmp -Iinclude -Isrc"
mkdir -p "$B/bench"

# 1. VGG16 forward, graft vs PyTorch (fp32 / bf16, 32x32 b64 and 224x224 b8)
cc $CFLAGS -o "$B/bench/bench_forward" bench/bench_forward.c "$B/libgraft.a" $LIBS
bench/forward.sh "$B/bench/bench_forward" "${BENCH_SECONDS:-5}"

# fine-tuning step (VGG16 block5 unfrozen / fully unfrozen + seed head), graft vs PyTorch (issue #5)
cc $CFLAGS -o "$B/bench/bench_finetune" bench/bench_finetune.c "$B/libgraft.a" $LIBS
bench/bench_finetune.sh "$B/bench/bench_finetune" "${BENCH_SECONDS:-5}"

# data input: JPEG decode+resize, CIFAR records, the batcher, graft vs PIL/torchvision
B="$B" bench/bench_decode.sh "${BENCH_SECONDS:-3}"

# the seed recipe on real CIFAR-10 (Tiny Darknet), graft vs PyTorch: accuracy, wall, peak RSS.
# QUICK by default (2 epochs, 5000 images, 32x32); RECIPE_FULL=1 for the 50k/20-epoch acceptance run
B="$B" bench/bench_recipe.sh "$([ "${RECIPE_FULL:-0}" = 1 ] && echo full || echo quick)"

# fine-tuning accuracy within a wall-time budget (Tiny Darknet, real CIFAR-10), graft vs PyTorch (issue #5).
# QUICK by default (2000 images, 2 epochs); FINETUNE_FULL=1 for the 50k / 30-minute-each acceptance run
B="$B" bench/bench_finetune_acc.sh "$([ "${FINETUNE_FULL:-0}" = 1 ] && echo full || echo quick)"
