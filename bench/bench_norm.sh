#!/usr/bin/env bash
# bench_norm.sh — the normalization step alone (gr_norm_apply) on a 224x224
# image per preset and for a custom mean/std, beside the former per-mode
# loops; min of N calls (memcpy of the image included).  Prints uptime.
# Usage: bench/bench_norm.sh [calls]   (B=build dir)
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}
mkdir -p "$B/bench"
[ -f "$B/libgraft.so" ] || make -s B="$B" "$B/libgraft.so"
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -Iinclude -o "$B/bench/bench_norm" bench/bench_norm.c \
   -L"$B" -lgraft -Wl,-rpath,"$PWD/$B"
uptime
OMP_NUM_THREADS=1 "$B/bench/bench_norm" "${1:-400}"
