#!/usr/bin/env bash
# bench_recipe.sh — the seed recipe on real CIFAR-10, graft vs PyTorch
# (bench/peer_recipe.py): real Tiny Darknet (tiny.cfg + tiny.weights) frozen
# and cut before its 1000-class conv (darknet layer 18), head flatten /
# dense 1024 relu / dense 10 softmax, SGD lr 0.01 decay 1e-6 momentum 0.9
# Nesterov, batch 32.  Per run: test accuracy, wall seconds and peak RSS
# (/usr/bin/time), then the ratios.  Plus VGG16 with random weights (speed).
#
# Usage: bench/bench_recipe.sh [quick|full|summary]      (default quick; RECIPE_FULL=1 = full)
#   quick   2 epochs, 32x32, the first 5000 records of data_batch_1, seed 1 (a few minutes)
#   full    50,000 train / 10,000 test, 20 epochs, 32x32 and 64x64, seeds 1 2 3 (hours on 2 cores)
#   summary print the table of the runs already in $RECIPE_OUT
# Environment (all optional):
#   B build dir [build]    GRAFT_DATA [../shared/data]   RECIPE_OUT results dir [$B/bench/recipe]
#   RECIPE_THREADS [2] threads for both sides       RECIPE_EPOCHS, RECIPE_SIZES, RECIPE_SEEDS, RECIPE_TRAIN
#   RECIPE_PARTS ["graft graft-std peer-cached peer-usual vgg"] which runs to make
#   RECIPE_PEER_BUDGET [1500] seconds: PyTorch's usual loop runs fewer epochs when the full count
#     would exceed this; its time is then extrapolated (never its accuracy)
# Accuracy parity uses graft --no-standardize (the raw Keras recipe) against PyTorch's cached run
# (the same math: the base is frozen in eval mode) and, when it ran every epoch, its usual loop.
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}
DATA=${GRAFT_DATA:-$(cd .. && pwd)/shared/data}
MODE=${1:-$([ "${RECIPE_FULL:-0}" = 1 ] && echo full || echo quick)}
OUT=${RECIPE_OUT:-$B/bench/recipe}
TH=${RECIPE_THREADS:-2}
PY=/usr/bin/python3
GRAFT=$B/graft
D=$DATA/weights/darknet-tiny
CIFAR=$DATA/cifar-10-batches-bin
TEST=$CIFAR/test_batch.bin
case $MODE in
  quick) EPOCHS=${RECIPE_EPOCHS:-2}; SIZES=${RECIPE_SIZES:-32}; SEEDS=${RECIPE_SEEDS:-1}
         NTRAIN=${RECIPE_TRAIN:-5000}; VGG_N=${RECIPE_VGG_TRAIN:-1000} ;;
  full)  EPOCHS=${RECIPE_EPOCHS:-20}; SIZES=${RECIPE_SIZES:-32 64}; SEEDS=${RECIPE_SEEDS:-1 2 3}
         NTRAIN=${RECIPE_TRAIN:-0}; VGG_N=${RECIPE_VGG_TRAIN:-5000} ;;
  summary) ;;
  *) echo "usage: $0 [quick|full|summary]" >&2; exit 2 ;;
esac
PARTS=${RECIPE_PARTS:-graft graft-std peer-cached peer-usual vgg}
BUDGET=${RECIPE_PEER_BUDGET:-1500}
mkdir -p "$OUT"

# ---- the table: one row per (size, seed) from the result files ----------------------------
get() { [ -f "$1" ] && awk -v k="$2" '$1 == k { print $2; exit }' "$1" || true; }
summary() {
  echo "== seed recipe on CIFAR-10, Tiny Darknet cut at layer 18 (results in $OUT)"
  printf '%-22s | %-24s | %-29s | %-16s | %s\n' "size_train_epochs_seed" "graft raw: acc wall_s MB" \
         "PyTorch usual: acc wall_s MB" "PyT cached: acc s" "acc diff (pts), speed-up, RSS ratio"
  local f pairs=""
  for f in "$OUT"/graft_*.txt; do
    [ -f "$f" ] || continue
    local tag=${f#"$OUT"/graft_}; tag=${tag%.txt}         # e.g. 32_n50000_e20_s1
    local u=$OUT/usual_$tag.txt c=$OUT/cached_$tag.txt s=$OUT/graftstd_$tag.txt
    local ga gw gr ua uw ur ue ca cw
    ga=$(get "$f" accuracy); gw=$(get "$f" wall_extrapolated); gr=$(get "$f" rss_mb)
    ua=$(get "$u" accuracy); uw=$(get "$u" wall_extrapolated); ur=$(get "$u" rss_mb); ue=$(get "$u" epochs_run)
    ca=$(get "$c" accuracy); cw=$(get "$c" wall)
    local ref=${ua:-$ca}
    [ "$(get "$u" epochs_run)" = "$(get "$u" epochs)" ] || ref=$ca   # usual accuracy only if complete
    local diff="-" speed="-" rss="-"
    [ -n "$ga" ] && [ -n "$ref" ] && pairs+="${tag%_s*} $ga $ref"$'\n'
    [ -n "$ga" ] && [ -n "$ref" ] && diff=$(echo "100 * ($ga - $ref)" | bc -l | xargs printf '%+.2f')
    [ -n "$gw" ] && [ -n "$uw" ] && speed=$(echo "$uw / $gw" | bc -l | xargs printf '%.1fx')
    [ -n "$gr" ] && [ -n "$ur" ] && rss=$(echo "$ur / $gr" | bc -l | xargs printf '%.1fx')
    printf '%-22s | %6s %9s %7s | %6s %9s %5s (%2s ep) | %6s %9s | %s, %s, %s\n' "$tag" "${ga:--}" "${gw:--}" "${gr:--}" \
           "${ua:--}" "${uw:--}" "${ur:--}" "${ue:--}" "${ca:--}" "${cw:--}" "$diff" "$speed" "$rss"
    [ -f "$s" ] && printf '%-22s | graft default (standardized features): acc %s wall %s s RSS %s MB\n' "" \
           "$(get "$s" accuracy)" "$(get "$s" wall_extrapolated)" "$(get "$s" rss_mb)"
  done
  # mean over the seeds that have both sides
  printf '%s' "$pairs" | awk 'NF == 3 { n[$1]++; g[$1] += $2; p[$1] += $3 }
    END { for (k in n) printf "%-22s | mean of %d seeds: graft %.4f, PyTorch %.4f, diff %+.2f pts\n",
                                k, n[k], g[k] / n[k], p[k] / n[k], 100 * (g[k] - p[k]) / n[k] }' | sort
  for f in "$OUT"/vgg_graft_*.txt; do
    [ -f "$f" ] || continue
    local p=${f/vgg_graft_/vgg_peer_} gi pi
    gi=$(get "$f" images_per_second); pi=$(get "$p" images_per_second)
    printf 'VGG16 random weights %s: graft %s img/s (wall %s s, %s MB), PyTorch usual %s img/s (wall %s s, %s MB)' \
           "$(basename "${f%.txt}" | sed 's/vgg_graft_//')" "$gi" "$(get "$f" wall)" "$(get "$f" rss_mb)" \
           "${pi:--}" "$(get "$p" wall)" "$(get "$p" rss_mb)"
    [ -n "$gi" ] && [ -n "$pi" ] && printf ', ratio %.1fx' "$(echo "$gi / $pi" | bc -l)"
    echo
  done
  echo "(wall = whole process incl. data load, features, training, test; 'wall' of runs with fewer epochs"
  echo " than asked is extrapolated: wall - sum(epochs) + epochs_asked * mean(epoch). acc diff = graft - PyTorch"
  echo " usual loop if it ran every epoch, else PyTorch cached. load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
}
[ "$MODE" = summary ] && { summary; exit 0; }

for f in "$D/tiny.cfg" "$D/tiny.weights" "$TEST" "$CIFAR/data_batch_1.bin"; do
  [ -f "$f" ] || { echo "bench_recipe: $f absent (set GRAFT_DATA)"; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench_recipe: /usr/bin/time missing (scripts/deps.sh installs 'time')"; exit 1; }
[ -x "$GRAFT" ] || make -s B="$B" "$GRAFT"

# training data: the directory, or a .bin of the first NTRAIN records (graft reads one .bin)
TRAIN=$CIFAR; NLAB=50000
if [ "$NTRAIN" -gt 0 ]; then
  TRAIN=$OUT/train_first$NTRAIN.bin; NLAB=$NTRAIN
  [ "$NTRAIN" -le 10000 ] || { echo "bench_recipe: RECIPE_TRAIN must be <= 10000 (one batch file)"; exit 2; }
  [ -f "$TRAIN" ] || head -c $((NTRAIN * 3073)) "$CIFAR/data_batch_1.bin" >"$TRAIN"
fi
echo "bench_recipe $MODE: $NLAB train images, sizes $SIZES, $EPOCHS epochs, seeds $SEEDS, threads $TH, parts: $PARTS"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# timed RESULT-FILE LOG -- command...: runs it under /usr/bin/time, appends wall and rss_mb
timed() {
  local res=$1 log=$2; shift 2
  echo "+ $*" | tee "$log"
  /usr/bin/time -f "wall %e\nrss_kb %M" -o "$res.time" "$@" >>"$log" 2>&1 || { echo "FAILED (see $log)"; tail -5 "$log"; return 1; }
  awk '$1=="wall"{print} $1=="rss_kb"{printf "rss_mb %.0f\n", $2/1024}' "$res.time" >>"$res"
  rm -f "$res.time"
}
# extrap RESULT-FILE EPOCHS_ASKED: wall_extrapolated from the per-epoch seconds in the file
extrap() {
  awk -v want="$2" '$1=="wall"{w=$2} $1=="epoch_seconds"{s+=$2; n++}
    END { if (n == 0) n = want; printf "epochs_run %d\nepochs %d\nwall_extrapolated %.1f\n", n, want, (n ? w - s + want * s / n : w) }' "$1" >>"$1"
}

graft_run() {   # graft_run RESULT size seed epochs extra-args...
  local res=$1 s=$2 seed=$3 ep=$4; shift 4
  : >"$res"
  timed "$res" "$res.log" "$GRAFT" train --base "darknet:$D/tiny.cfg" --weights "$D/tiny.weights" \
        --data "$TRAIN" --test "$TEST" --input-size "${s}x$s" --epochs "$ep" --seed "$seed" \
        --threads "$TH" --out "$OUT/model.gft" "$@" || return 0
  awk '/^Test accuracy:/{print "accuracy", $3}
       /^Epoch [0-9]+\/[0-9]+ - /{for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+s$/) { sub("s", "", $i); print "epoch_seconds", $i; break }}' \
      "$res.log" >>"$res"
  extrap "$res" "$ep"
}
peer_run() {    # peer_run RESULT size seed epochs mode extra-args...
  local res=$1 s=$2 seed=$3 ep=$4 mode=$5; shift 5
  : >"$res"
  timed "$res" "$res.log" $PY bench/peer_recipe.py --cfg "$D/tiny.cfg" --weights "$D/tiny.weights" \
        --data "$TRAIN" --test "$TEST" --size "$s" --epochs "$ep" --seed "$seed" --threads "$TH" \
        --mode "$mode" "$@" || return 0
  awk '$1=="test_accuracy"{print "accuracy", $2} $1=="epoch_seconds"||$1=="images_per_second"{print $1, $2}' "$res.log" >>"$res"
  extrap "$res" "$ep"
}
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

for s in $SIZES; do
  for seed in $SEEDS; do
    tag=${s}_n${NLAB}_e${EPOCHS}_s$seed
    has graft && graft_run "$OUT/graft_$tag.txt" "$s" "$seed" "$EPOCHS" --no-standardize
    has graft-std && graft_run "$OUT/graftstd_$tag.txt" "$s" "$seed" "$EPOCHS"
    has peer-cached && peer_run "$OUT/cached_$tag.txt" "$s" "$seed" "$EPOCHS" cached
    # PyTorch's usual loop; stops early when all epochs would exceed the budget
    has peer-usual && peer_run "$OUT/usual_$tag.txt" "$s" "$seed" "$EPOCHS" usual --budget "$BUDGET"
  done
done

if has vgg; then   # VGG16, random weights, 32x32, 2 epochs on VGG_N images: speed only
  head -c $((VGG_N * 3073)) "$CIFAR/data_batch_1.bin" >"$OUT/vgg_train.bin"
  tag=32_n${VGG_N}_e2
  r=$OUT/vgg_graft_$tag.txt; : >"$r"
  if timed "$r" "$r.log" "$GRAFT" train --base vgg16 --weights none --data "$OUT/vgg_train.bin" --epochs 2 \
           --threads "$TH" --no-standardize --out "$OUT/vgg.gft"; then
    awk -v n=$((2 * VGG_N)) '$1=="wall"{printf "images_per_second %.1f\n", n / $2}' "$r" >>"$r"
  fi
  r=$OUT/vgg_peer_$tag.txt; : >"$r"
  if timed "$r" "$r.log" $PY bench/peer_recipe.py --base vgg16 --data "$OUT/vgg_train.bin" --epochs 2 \
           --threads "$TH" --mode usual; then
    awk -v n=$((2 * VGG_N)) '$1=="wall"{printf "images_per_second %.1f\n", n / $2}' "$r" >>"$r"
  fi
fi
summary
