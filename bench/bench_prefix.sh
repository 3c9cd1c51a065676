#!/usr/bin/env bash
# bench_prefix.sh — the cached frozen prefix (README "The cached prefix"):
# seconds per epoch and test accuracy after a short fixed run, with and
# without the cache, on the real CIFAR-10.
#
# The run: the first PX_N (10,000) training images of data_batch_1, 10% held
# out for validation (--val-split 0.1), PX_EPOCHS (3) epochs, the Coral
# MobileNet v2 (weights dequantized) with blocks 10-16 and Conv_1 unfrozen at
# 0.1x the rate (--unfreeze MobilenetV2/expanded_conv_10/expand/Relu6
# --base-lr-mult 0.1), --label-smoothing 0.1, at PX_SIZES (96 128) px; tested
# on the first PX_TEST (5,000) images of the test set.  Each size runs:
#   augment          --augment (crop pad 4 + flip): the base runs every batch
#   augment+cache    --augment --cache-prefix: the crop as a map translation
#   flip             --flip --no-cache: the base runs every batch
#   flip+cache       --flip: the default, the mirrors' outputs cached (exact)
# s/epoch is the mean of the epoch lines (training + validation); "prefix s"
# is the features passes (train, mirrored) the cached runs pay once; wall is
# the whole command.  Timed runs go at nice -n -10 (PX_NICE) when allowed;
# the load average is printed beside each run.
#
#   Usage: bench/bench_prefix.sh      (B=build, GRAFT_DATA=../shared/data,
#          PX_RUNS="augment augment+cache flip flip+cache", THREADS=nproc)
#          bench/bench_prefix.sh full: one run of the recipe on all of
#          CIFAR-10 (45,000 train, 5,000 validation, the 10,000 test images
#          for the final figure only): 96 px, blocks 10-16, --augment
#          --cache-prefix --label-smoothing 0.1 --tta flip, PX_FULL_EPOCHS (6)
#          epochs, timed whole (the 30-minute budget: everything counted).
#   Results in $B/bench/prefix/; a finished run is not run again.
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}; GRAFT=$B/graft
DATA=${GRAFT_DATA:-../shared/data}; CIFAR=$DATA/cifar-10-batches-bin
MNV2=$DATA/weights/coral-tflite/mobilenet_v2_1.0_224_quant.tflite
N=${PX_N:-10000}; NT=${PX_TEST:-5000}; EP=${PX_EPOCHS:-3}; TH=${THREADS:-$(nproc)}
SIZES=${PX_SIZES:-96 128}; RUNS=${PX_RUNS:-augment augment+cache flip flip+cache}
# PX_BLOCK: the first unfrozen block (10: blocks 10-16; 13: blocks 13-16, logs named b13-...)
BLK=${PX_BLOCK:-10}; TAG=$([ "$BLK" = 10 ] || echo "b$BLK-")
NICE=${PX_NICE:--10}
R=$B/bench/prefix; mkdir -p "$R"
for f in "$MNV2" "$CIFAR/data_batch_1.bin" "$CIFAR/test_batch.bin"; do
  [ -f "$f" ] || { echo "bench_prefix: $f absent (set GRAFT_DATA)" >&2; exit 1; }
done
[ -x "$GRAFT" ] || make -s B="$B" "$GRAFT"
TRAIN=$R/train$N.bin; TEST=$R/test$NT.bin
[ -f "$TRAIN" ] || head -c $((N * 3073)) "$CIFAR/data_batch_1.bin" >"$TRAIN"
[ -f "$TEST" ] || head -c $((NT * 3073)) "$CIFAR/test_batch.bin" >"$TEST"
nice -n "$NICE" true 2>/dev/null || NICE=0
# a private features cache: every run computes its prefix (none reused from another run)
export GRAFT_HOME=$R/home
if [ "${1:-}" = full ]; then
  L=$R/full.log; EPF=${PX_FULL_EPOCHS:-6}
  if ! { [ -f "$L" ] && grep -q '^Test accuracy' "$L"; }; then
    rm -rf "$GRAFT_HOME"
    up0=$(cut -d' ' -f1-3 /proc/loadavg); t0=$(date +%s.%N)
    set -x
    nice -n "$NICE" "$GRAFT" train --base "tflite:$MNV2" --input-size 96x96 \
      --unfreeze MobilenetV2/expanded_conv_10/expand/Relu6 --base-lr-mult 0.1 --label-smoothing 0.1 \
      --augment --cache-prefix --tta flip --val-split 0.1 --data "$CIFAR" --test "$CIFAR" --epochs "$EPF" \
      --seed 1 --threads "$TH" --out "$R/full.gft" >"$L.tmp" 2>&1 || { echo "full FAILED:"; tail -3 "$L.tmp"; exit 1; }
    set +x
    t1=$(date +%s.%N)
    { tr '\r' '\n' <"$L.tmp" | grep -v ETA; echo "wall $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}')";
      echo "load_start $up0"; echo "load_end $(cut -d' ' -f1-3 /proc/loadavg)"; } >"$L"
    rm -f "$L.tmp"
  fi
  grep -E '^(cached prefix|features \(|Epoch [0-9]+/|Test |wall|load_)' "$L"
  exit 0
fi
echo "bench_prefix: $N train images (10% validation), $EP epochs, test $NT, threads $TH, nice $NICE"
for px in $SIZES; do
  for run in $RUNS; do
    case $run in
      augment) OPT=(--augment) ;;
      augment+cache) OPT=(--augment --cache-prefix) ;;
      flip) OPT=(--flip --no-cache) ;;
      flip+cache) OPT=(--flip) ;;
      *) echo "bench_prefix: unknown run $run" >&2; exit 2 ;;
    esac
    L=$R/$TAG$px-$run.log
    if [ -f "$L" ] && grep -q '^Test accuracy' "$L"; then continue; fi
    rm -rf "$GRAFT_HOME"
    up0=$(cut -d' ' -f1-3 /proc/loadavg); t0=$(date +%s.%N)
    nice -n "$NICE" "$GRAFT" train --base "tflite:$MNV2" --input-size "${px}x$px" \
      --unfreeze "MobilenetV2/expanded_conv_$BLK/expand/Relu6" --base-lr-mult 0.1 --label-smoothing 0.1 \
      "${OPT[@]}" --val-split 0.1 --data "$TRAIN" --test "$TEST" --epochs "$EP" --seed 1 --threads "$TH" \
      --out "$R/$TAG$px-$run.gft" >"$L.tmp" 2>&1 || { echo "$px $run FAILED:"; tail -3 "$L.tmp"; continue; }
    t1=$(date +%s.%N)
    { tr '\r' '\n' <"$L.tmp" | grep -v ETA; echo "wall $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}')";
      echo "load_start $up0"; echo "load_end $(cut -d' ' -f1-3 /proc/loadavg)"; } >"$L"
    rm -f "$L.tmp"
  done
done
echo
echo "blocks $BLK-16 unfrozen"
echo "| px | run | s/epoch | prefix s (once) | wall s | test accuracy | load (1-min, start -> end) |"
echo "|---|---|---|---|---|---|---|"
for px in $SIZES; do
  for run in $RUNS; do
    L=$R/$TAG$px-$run.log
    [ -f "$L" ] || continue
    eps=$(awk '/^Epoch [0-9]+\/[0-9]+ - /{for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+s$/) { sub("s", "", $i); s += $i; n++; break }}
               END { if (n) printf "%.1f", s / n }' "$L")
    pre=$(awk '/^features \(train(, mirrored)?\): [0-9]+ images in/ {for (i = 1; i <= NF; i++) if ($i == "in") { v = $(i+1); sub("s", "", v); s += v }}
               END { if (s) printf "%.1f", s; else print "-" }' "$L")
    acc=$(awk '/^Test accuracy:/ {printf "%.2f%%", 100 * $3}' "$L")
    wall=$(awk '$1 == "wall" {print $2}' "$L")
    ld=$(awk '$1 == "load_start" {a = $2} $1 == "load_end" {b = $2} END {print a " -> " b}' "$L")
    echo "| $px | $run | $eps | $pre | $wall | $acc | $ld |"
  done
done
