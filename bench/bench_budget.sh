#!/bin/bash
# bench_budget.sh — `graft train --budget` against graft's default recipe.
#
# For each data set and budget: `graft train --data D/train --test D/test
# --budget B` (the whole run counted: probing, features, training, the test
# evaluation), then graft's default recipe on the same data (`graft train
# --base tiny-darknet --data D/train --test D/test`: 224x224, frozen, 20
# epochs) with as many epochs as fit the budget (measured from a 1-epoch
# run of it; its second run reuses the features cache, which favours it).
# Prints one line per budget: data, budget, wall time (% of the budget),
# test accuracy, the default recipe's accuracy and wall, the load average
# before and after, and the plan's chosen row.
#
#   B=build bench/bench_budget.sh                    # the sets and budgets below
#   BUDGET_SETS=c5 BUDGET_TIMES="2m 5m" bench/bench_budget.sh
#   BUDGET_CIFAR=30m bench/bench_budget.sh cifar     # the real CIFAR-10 (one run)
#     cifar: --val-split 0.1, the bases BUDGET_BASES (default: the shared
#     data's Coral MobileNet v2, the base of issue 19's hand-tuned recipe;
#     several: "darknet:.../tiny.cfg,tflite:..." with BUDGET_WEIGHTS
#     ".../tiny.weights,imagenet"),
#     a fresh GRAFT_HOME (every features pass and cached prefix is paid in
#     the run), under /usr/bin/time (peak RSS).
#
# The small sets plan among the bases on this machine and run the default
# recipe's tiny-darknet: fetch it first where there is no network
# (`GRAFT_MIRROR=../shared/data build/graft fetch tiny-darknet`); Fashion-MNIST
# is Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist).
#
# Data (made once under $BUDGET_DATA, default build/budget-data, by
# bench/make_budget_data.py): fm10k = Fashion-MNIST 28x28 grayscale, 10
# classes, 10,000 train / 2,000 test (Debian's dataset-fashion-mnist);
# fm3k = the same, 3,000 / 1,000; fm4s = 4 classes, 160 / 80; c5 =
# CIFAR-10's first 5 classes, 32x32 RGB, 2,000 / 500; c10 = all 10, 5,000 /
# 1,000.
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
G=${GRAFT:-$B/graft}
DATA=${BUDGET_DATA:-$B/budget-data}
SETS=${BUDGET_SETS:-"c5 fm3k"}
TIMES=${BUDGET_TIMES:-"5m 15m"}
OUT=${BUDGET_OUT:-$B/budget-runs}
PY=/usr/bin/python3
mkdir -p "$DATA" "$OUT"
[ -x "$G" ] || { echo "bench_budget: $G missing (make first)" >&2; exit 1; }

make_set() {   # name -> $DATA/name/{train,test}
    local d=$DATA/$1
    [ -d "$d/train" ] && return 0
    case $1 in
        fm10k) $PY bench/make_budget_data.py fashion "$d" 1000 200 10 ;;
        fm3k) $PY bench/make_budget_data.py fashion "$d" 300 100 10 ;;
        fm4s) $PY bench/make_budget_data.py fashion "$d" 40 20 4 ;;
        c5) $PY bench/make_budget_data.py cifar "$d" 400 100 5 ;;
        c10) $PY bench/make_budget_data.py cifar "$d" 500 100 10 ;;
        *) echo "bench_budget: unknown set $1" >&2; return 1 ;;
    esac
}

secs() {   # 90s / 5m / 1.5h -> seconds
    awk -v t="$1" 'BEGIN { u = substr(t, length(t)); v = substr(t, 1, length(t) - 1) + 0;
        if (u == "m") v *= 60; else if (u == "h") v *= 3600; else if (u != "s") v = t + 0; print v }'
}

acc() { sed -n 's/^Test accuracy: //p' "$1" | tail -1; }

run() {   # label budget cmd... -> prints wall and accuracy
    local log=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$log" 2>&1
    local rc=$?
    t1=$(date +%s.%N)
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') $rc"
}

default1() {   # set -> $OUT/set-default1.{log,done}: the default recipe, 1 epoch: "wall epoch_s"
    local set=$1 d=$DATA/$1
    [ -s "$OUT/$set-default1.done" ] && return 0
    local r
    r=$(run "$OUT/$set-default1.log" "$G" train --base tiny-darknet --data "$d/train" --test "$d/test" --epochs 1 \
        --out "$OUT/$set-default1.gft")
    echo "${r% *} $(sed -n 's/^Epoch 1\/1 - [0-9]*\/[0-9]* - \([0-9.]*\)s.*/\1/p' "$OUT/$set-default1.log" | tail -1)" \
        > "$OUT/$set-default1.done"
}

one() {   # set budget
    local set=$1 budget=$2 d=$DATA/$1 s
    s=$(secs "$budget")
    make_set "$set" || return 1
    local load0 load1 r wall rc a
    load0=$(cut -d' ' -f1 /proc/loadavg)
    r=$(run "$OUT/$set-$budget.log" "$G" train --data "$d/train" --test "$d/test" --budget "$budget" \
        --out "$OUT/$set-$budget.gft" --report "$OUT/$set-$budget.report")
    wall=${r% *}; rc=${r#* }
    a=$(acc "$OUT/$set-$budget.log")
    load1=$(cut -d' ' -f1 /proc/loadavg)
    # the default recipe (tiny-darknet at its own 224x224, cut 18, frozen, 20 epochs), with as many
    # epochs as fit the budget: from a 1-epoch run, fixed = wall - epoch; epochs = (budget - fixed) / epoch
    default1 "$set"
    local w1 e1 ep da dwall note
    read -r w1 e1 < "$OUT/$set-default1.done"
    ep=$(awk -v w="$w1" -v e="$e1" -v s="$s" 'BEGIN { n = int((s - (w - e)) / e); if (n > 20) n = 20; print n }')
    if [ "$ep" -ge 2 ]; then
        r=$(run "$OUT/$set-default-$budget.log" "$G" train --base tiny-darknet --data "$d/train" --test "$d/test" \
            --epochs "$ep" --out "$OUT/$set-default-$budget.gft")
        dwall=${r% *}; da=$(acc "$OUT/$set-default-$budget.log"); note="$ep epochs"
    else
        dwall=$w1; da=$(acc "$OUT/$set-default1.log"); note="1 epoch (${ep} fit the budget)"
    fi
    note="$note; 1 epoch = ${e1}s"
    local plan
    plan=$(grep -- '<- chosen' "$OUT/$set-$budget.log" | awk '{$NF=""; $(NF-1)=""; print}' | sed 's/  *$//' | head -1)
    printf '%-6s %5s | budget run: wall %6.1fs (%5.1f%%) rc %s acc %-6s | default recipe: acc %-6s wall %6.1fs (%s) | load %s->%s | plan: %s\n' \
        "$set" "$budget" "$wall" "$(awk -v w="$wall" -v s="$s" 'BEGIN { print 100 * w / s }')" "$rc" "${a:-?}" \
        "${da:-?}" "$dwall" "$note" "$load0" "$load1" "$plan"
}

if [ "${1:-}" = cifar ]; then
    C=${CIFAR_DIR:-../shared/data/cifar-10-batches-bin}
    [ -d "$C" ] || { echo "SKIP: no CIFAR-10 at $C"; exit 0; }
    budget=${BUDGET_CIFAR:-30m}
    W=${GRAFT_DATA:-../shared/data}/weights
    BASES=${BUDGET_BASES:-tflite:$W/coral-tflite/mobilenet_v2_1.0_224_quant.tflite}
    WEIGHTS=${BUDGET_WEIGHTS:-imagenet}
    s=$(secs "$budget")
    load0=$(cut -d' ' -f1 /proc/loadavg)
    rm -rf "$OUT/cifar10-home"; mkdir -p "$OUT/cifar10-home"
    r=$(GRAFT_HOME=$OUT/cifar10-home run "$OUT/cifar10-$budget.log" /usr/bin/time -v "$G" train --data "$C" --test "$C" \
        --val-split 0.1 --budget "$budget" --base "$BASES" --weights "$WEIGHTS" --seed "${BUDGET_SEED:-1}" \
        --out "$OUT/cifar10-$budget.gft")
    wall=${r% *}
    printf 'cifar10 %s  wall %.1fs (%.1f%%) rc %s  acc %s  peak RSS %s MB | load %s-%s | plan: %s\n' "$budget" "$wall" \
        "$(awk -v w="$wall" -v s="$s" 'BEGIN { print 100 * w / s }')" "${r#* }" "$(acc "$OUT/cifar10-$budget.log")" \
        "$(awk '/Maximum resident/ {printf "%.0f", $NF / 1024}' "$OUT/cifar10-$budget.log")" \
        "$load0" "$(cut -d' ' -f1 /proc/loadavg)" \
        "$(grep -- '<- chosen' "$OUT/cifar10-$budget.log" | awk '{$NF=""; $(NF-1)=""; print}' | sed 's/  *$//' | head -1)"
    exit 0
fi

echo "graft train --budget vs the default recipe ($(date -u +%FT%TZ), $(nproc) cores; logs in $OUT)"
for set in $SETS; do
    for t in $TIMES; do one "$set" "$t"; done
done
