#!/usr/bin/env bash
# bench_converge.sh — real-data acceptance of the training recipe: real CIFAR-10,
# real Tiny Darknet (tiny.cfg + tiny.weights) frozen, the seed head (flatten /
# dense 1024 relu / dense 10 softmax) and optimizer (SGD 0.01, decay 1e-6,
# momentum 0.9 Nesterov, batch 32) at 64x64:
#   std     graft's default (standardized features), seeds SEEDS
#   raw     graft --no-standardize (the raw Keras recipe), seeds SEEDS
#   peer    bench/peer_head.py: the same head and recipe in PyTorch on the SAME
#           features, extracted by `graft extract --layer 18` (the base forward
#           itself is checked against PyTorch in tests/test_darknet.c), raw
#   peerstd the same with features standardized by the train mean/std and the rate on
#           a cosine schedule (graft's default; CosineAnnealingLR stepped per batch)
#   cuts    graft default recipe at each cut of CUTS, seed 1, CUT_EPOCHS epochs
#   auto    graft --cut auto, same epochs: which cut it picks, vs the best cut
# Every run is timed (/usr/bin/time); the features cache lives in
# $GRAFT_HOME/cache/features (GRAFT_HOME = $OUT/home), so a run whose cut was
# already computed skips the base — the table says which runs were cache hits.
# Runs whose result log exists are skipped (delete $OUT to redo).
#
# Usage: bench/bench_converge.sh [quick|full|summary]   (default quick; CONV_FULL=1 = full)
#   quick   2000 train images (data_batch_1), 1000 test, 2 epochs (cuts 1), seed 1, cuts 14 18 (minutes)
#   full    50,000 / 10,000, 20 epochs, seeds 1 2 3; cuts 8 12..18 at CUT_EPOCHS [5] epochs, seed 1
#   summary the markdown tables of the runs already in $OUT
# Environment: B build dir [build]  GRAFT_DATA [../shared/data]  CONV_OUT [$B/bench/converge]
#   CONV_THREADS [2]  CONV_EPOCHS  CONV_SEEDS  CUT_EPOCHS  CONV_CUTS
#   CONV_PARTS ["std raw peer peerstd cuts auto"] (run in this order)
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}
DATA=${GRAFT_DATA:-$(cd .. && pwd)/shared/data}
MODE=${1:-$([ "${CONV_FULL:-0}" = 1 ] && echo full || echo quick)}
OUT=${CONV_OUT:-$B/bench/converge}
TH=${CONV_THREADS:-2}
PY=/usr/bin/python3
GRAFT=$B/graft
D=$DATA/weights/darknet-tiny
CIFAR=$DATA/cifar-10-batches-bin
SIZE=64x64
case $MODE in
  quick) EPOCHS=${CONV_EPOCHS:-2}; SEEDS=${CONV_SEEDS:-1}; CEP=${CUT_EPOCHS:-1}; CUTS=${CONV_CUTS:-14 18}
         TAG=quick ;;
  full)  EPOCHS=${CONV_EPOCHS:-20}; SEEDS=${CONV_SEEDS:-1 2 3}; CEP=${CUT_EPOCHS:-5}
         CUTS=${CONV_CUTS:-8 12 13 14 15 16 17 18}; TAG=full ;;
  summary) TAG=${CONV_TAG:-full} ;;
  *) echo "usage: $0 [quick|full|summary]" >&2; exit 2 ;;
esac
PARTS=${CONV_PARTS:-std raw peer peerstd cuts auto}
R=$OUT/$TAG
mkdir -p "$R"
export GRAFT_HOME=${GRAFT_HOME_BENCH:-$OUT/home}

# ---- summary: markdown tables from the logs in $R ------------------------------------------
acc() { awk '/^Test accuracy:/{print $3} $1=="test_accuracy"{print $2}' "$1" 2>/dev/null | tail -1; }
wall() { awk '$1=="wall"{print $2}' "$1.time" 2>/dev/null; }
# a cache hit: the log says so (verbose runs), or the run added no file to the cache (--quiet runs)
hit() { if [ -f "$1.cache" ]; then cat "$1.cache"; else grep -q "reused from the features cache" "$1" 2>/dev/null && echo yes || echo no; fi; }
ncache() { ls "$GRAFT_HOME/cache/features" 2>/dev/null | wc -l; }
mean_sd() { awk '{ s += $1; q += $1 * $1; n++ } END { if (n) { m = s / n; v = n > 1 ? (q - n * m * m) / (n - 1) : 0;
                 printf "%.4f ± %.4f (n=%d)", m, (v > 0 ? sqrt(v) : 0), n } else printf "-" }'; }
summary() {
  echo "### graft vs PyTorch, Tiny Darknet cut 18 (4x4x128), $SIZE ($R)"
  echo
  echo "| run | seed | epochs | test acc (final) | best epoch acc (epoch) | wall s | features cache hit |"
  echo "|---|---|---|---|---|---|---|"
  local k f s
  for k in std raw peer peerstd; do
    for f in "$R"/${k}_s*.log; do
      [ -f "$f" ] || continue
      s=${f##*_s}; s=${s%.log}
      local best="-" ep hits="-"
      best=$(awk '$1=="best_test_accuracy"{a=$2} $1=="best_epoch"{e=$2} END{if (a) printf "%s (%s)", a, e; else print "-"}' "$f")
      ep=$(awk -F, 'NR > 1 {n++} END {print n + 0}' "${f%.log}.csv" 2>/dev/null || true)
      [ "${ep:-0}" -gt 0 ] 2>/dev/null || ep=$(awk '$1=="epoch"{n=$2} END{print n + 0}' "$f")
      case $k in std|raw) hits=$(hit "$f") ;; esac
      printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$(label $k)" "$s" "$ep" "$(acc "$f")" "$best" "$(wall "$f")" "$hits"
    done
  done
  echo
  echo "| run | mean ± sd test acc (final) |"
  echo "|---|---|"
  for k in std raw peer peerstd; do
    ls "$R"/${k}_s*.log >/dev/null 2>&1 || continue
    printf '| %s | %s |\n' "$(label $k)" "$(for f in "$R"/${k}_s*.log; do acc "$f"; done | grep . | mean_sd)"
  done
  if ls "$R"/cut_*.log >/dev/null 2>&1 || [ -f "$R/cutauto.log" ]; then
    echo
    echo "### cut table: graft default recipe, $SIZE, seed 1, $(cat "$R/cut_epochs" 2>/dev/null || echo '?') epochs"
    echo
    echo "| cut (darknet layer) | output | test acc | wall s | features cache hit |"
    echo "|---|---|---|---|---|"
    for c in $(ls "$R"/cut_*.log 2>/dev/null | sed 's/.*cut_//; s/[.]log$//' | sort -n); do
      f=$R/cut_$c.log
      printf '| %s | %s | %s | %s | %s |\n' "$c" "$(shape_of "$c")" "$(acc "$f")" "$(wall "$f")" "$(hit "$f")"
    done
    if [ -f "$R/cutauto.log" ]; then
      local pick; pick=$(sed -n "s/^--cut auto: '\([^']*\)'.*/\1/p" "$R/cutauto.log")
      printf '| **auto** -> %s | | %s | %s | %s |\n' "${pick:-?}" "$(acc "$R/cutauto.log")" "$(wall "$R/cutauto.log")" "$(hit "$R/cutauto.log")"
      echo
      echo "auto's probe (ridge on 2000 stratified samples):"
      echo '```'
      grep -E "^  [^ ].*ridge" "$R/cutauto.log" || true
      echo '```'
      local best bc
      best=$(for f in "$R"/cut_*.log; do c=${f##*cut_}; echo "$(acc "$f") ${c%.log}"; done | grep -v '^ ' | sort -rn | head -1)
      bc=${best#* }; best=${best%% *}
      [ -n "$best" ] && [ -n "$(acc "$R/cutauto.log")" ] && echo && \
        echo "best trained cut: $bc ($best); auto: ${pick:-?} ($(acc "$R/cutauto.log")); gap $(echo "100 * ($best - $(acc "$R/cutauto.log"))" | bc -l | xargs printf '%.2f') points"
    fi
  fi
  echo
  echo "(wall = the whole process under /usr/bin/time incl. base features, training, test; load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
}
label() { case $1 in std) echo "graft default (standardized)";; raw) echo "graft --no-standardize";;
          peer) echo "PyTorch raw (graft-extracted features)";; peerstd) echo "PyTorch standardized, cosine (graft-extracted features)";; esac; }
shape_of() { awk -v c="$1" '$1 == c {print $2}' "$R/shapes" 2>/dev/null || true; }
[ "$MODE" = summary ] && { summary; exit 0; }

for f in "$D/tiny.cfg" "$D/tiny.weights" "$CIFAR/test_batch.bin" "$CIFAR/data_batch_1.bin"; do
  [ -f "$f" ] || { echo "bench_converge: $f absent (set GRAFT_DATA)"; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench_converge: /usr/bin/time missing (scripts/deps.sh installs 'time')"; exit 1; }
[ -x "$GRAFT" ] || make -s B="$B" "$GRAFT"

if [ "$MODE" = quick ]; then   # subsets as single .bin files (graft and extract read them in order)
  TRAIN=$R/train2000.bin; TEST=$R/test1000.bin
  [ -f "$TRAIN" ] || head -c $((2000 * 3073)) "$CIFAR/data_batch_1.bin" >"$TRAIN"
  [ -f "$TEST" ] || head -c $((1000 * 3073)) "$CIFAR/test_batch.bin" >"$TEST"
  XTR=(--data "$TRAIN"); XTE=(--data "$TEST")
else
  TRAIN=$CIFAR; TEST=$CIFAR
  XTR=(--data "$CIFAR" --split train); XTE=(--data "$CIFAR" --split test)
fi
echo "bench_converge $MODE: $EPOCHS epochs, seeds $SEEDS, cuts $CUTS at $CEP epochs, $SIZE, threads $TH; parts: $PARTS"
echo "GRAFT_HOME=$GRAFT_HOME; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
BASE=(--base "darknet:$D/tiny.cfg" --weights "$D/tiny.weights")
# darknet layer -> output HxWxC at this size (for the cut table)
"$GRAFT" info "${BASE[@]}" --input-size $SIZE 2>/dev/null | \
  awk '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ { s = $0; sub(/.*\(None, /, "", s); sub(/\).*/, "", s); gsub(/, /, "x", s); print $2, s }' >"$R/shapes"
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# run NAME command...: skips when $R/NAME.log holds a result; else runs it timed into NAME.log
run() {
  local name=$1; shift
  if [ -n "$(acc "$R/$name.log")" ]; then echo "= $name: done before ($(acc "$R/$name.log"))"; return 0; fi
  echo "+ $*" | tee "$R/$name.cmd"
  local n0; n0=$(ncache)
  if /usr/bin/time -f "wall %e\nrss_kb %M" -o "$R/$name.log.time" "$@" >"$R/$name.log" 2>&1; then
    case $1 in "$GRAFT") [ "$(ncache)" -gt "$n0" ] && echo no >"$R/$name.log.cache" || echo yes >"$R/$name.log.cache" ;; esac
    echo "  $name: test accuracy $(acc "$R/$name.log"), wall $(wall "$R/$name.log") s, cache hit $(hit "$R/$name.log")"
  else
    echo "  $name FAILED:"; tail -5 "$R/$name.log"
  fi
}
gtrain() { local name=$1; shift
  run "$name" "$GRAFT" train "${BASE[@]}" --data "$TRAIN" --test "$TEST" --input-size $SIZE --threads "$TH" \
      --out "$R/model.gft" --log "$R/$name.csv" "$@"; }

for seed in $SEEDS; do
  has std && gtrain "std_s$seed" --epochs "$EPOCHS" --seed "$seed" --quiet
done
for seed in $SEEDS; do
  has raw && gtrain "raw_s$seed" --epochs "$EPOCHS" --seed "$seed" --quiet --no-standardize
done
if has peer || has peerstd; then
  # train features: graft's own features cache of the cut-18 runs above (n x 2048 floats, the
  # rows graft trained on) when present, else `graft extract`; test features: graft extract
  FTR=$R/feat18_train.npy
  NTR=$(( $(stat -c %s "$TRAIN" 2>/dev/null || echo 0) / 3073 )); [ -d "$TRAIN" ] && NTR=50000
  for f in "$GRAFT_HOME"/cache/features/*; do
    [ -f "$f" ] || continue
    hdr=$(od -A n -t u8 -j 8 -N 16 "$f" | xargs)
    [ "$hdr" = "$NTR 2048" ] && FTR=$f && echo "train features from graft's features cache: $f" && break
  done
  todo="test"; [ "$FTR" = "$R/feat18_train.npy" ] && todo="train test"
  for sp in $todo; do
    f=$R/feat18_$sp.npy
    [ -f "$f" ] && continue
    x=("${XTR[@]}"); [ $sp = test ] && x=("${XTE[@]}")
    echo "+ graft extract --layer 18 $sp"
    /usr/bin/time -f "wall %e" -o "$f.time" "$GRAFT" extract "${BASE[@]}" "${x[@]}" --layer 18 \
        --input-size $SIZE --threads "$TH" --out "$f.tmp.npy" >"$f.log" 2>&1 && mv "$f.tmp.npy" "$f" \
      || { echo "extract failed:"; tail -5 "$f.log"; exit 1; }
    echo "  $(cat "$f.time")"
  done
  if [ "$FTR" != "$R/feat18_train.npy" ]; then   # the cache rows = graft extract's, on 500 images
    head -c $((500 * 3073)) "$CIFAR/data_batch_1.bin" >"$R/check500.bin"
    "$GRAFT" extract "${BASE[@]}" --data "$R/check500.bin" --layer 18 --input-size $SIZE --threads "$TH" \
        --out "$R/check500.npy" >/dev/null
    $PY -c "import numpy as np, sys; a = np.load(sys.argv[1]).reshape(500, -1); \
b = np.fromfile(sys.argv[2], np.float32, count=500 * a.shape[1], offset=24).reshape(500, -1); \
print('check: graft extract vs the features cache, first 500 train images: max |diff| %.3g' % abs(a - b).max())" \
        "$R/check500.npy" "$FTR" | tee "$R/check500.txt"
  fi
  for seed in $SEEDS; do
    has peer && run "peer_s$seed" $PY bench/peer_head.py --train "$FTR" --test "$R/feat18_test.npy" \
        --train-labels "$TRAIN" --test-labels "$TEST" --epochs "$EPOCHS" --seed "$seed" --threads "$TH"
  done
  for seed in $SEEDS; do
    has peerstd && run "peerstd_s$seed" $PY bench/peer_head.py --train "$FTR" --test "$R/feat18_test.npy" \
        --train-labels "$TRAIN" --test-labels "$TEST" --epochs "$EPOCHS" --seed "$seed" --threads "$TH" --standardize --schedule cosine
  done
fi
echo "$CEP" >"$R/cut_epochs"
if has cuts; then
  for c in $CUTS; do gtrain "cut_$c" --epochs "$CEP" --seed 1 --quiet --cut "$c"; done
fi
# not --quiet: its log names the chosen cut and the probe's table
has auto && gtrain cutauto --epochs "$CEP" --seed 1 --cut auto
summary
