#!/usr/bin/env bash
# diff_cli.sh — a differential audit of the command line: runs a matrix of
# graft commands with two binaries on the same small inputs and compares
# what they did.
#
#   bash bench/diff_cli.sh OLD_GRAFT NEW_GRAFT [REGEX]
#
# REGEX (optional) keeps only the cases whose name matches it.  Run from the
# repository root (it reads tests/fixtures).  Needs /usr/bin/python3 with
# numpy and PIL (as the tests do); the real Tiny Darknet in ../shared/data
# ($GRAFT_DATA) is used where present, its cases skipped otherwise.
#
# Each case is a bash function that runs one or more graft commands through
# `g ARGS...`; it runs in a fresh directory $W/run (the same absolute path for
# both binaries, so paths inside outputs agree), which is then kept as
# $W/old/CASE or $W/new/CASE.  Compared, per case:
#   - each command's exit code (rc.txt);
#   - its stdout and stderr, after masking what varies from run to run
#     (durations "0.12s", rates "img/s", "seconds" fields, the lock-file pid);
#   - every file the case left: the same names; CSV files with their
#     "seconds" column masked; TensorBoard event files as (step, tag, value)
#     without the wall times and the speed tags; a report's run.json without
#     its timings; everything else (models .gft, checkpoints, .npy, eval
#     --json, predict output, sidecars) byte for byte.
# A difference prints the case, the file and the first differing lines; the
# last line counts the cases that differ.  Differences are findings to judge:
# a wording change can be intended, a number or a file that changes is not
# (unless the change says why).  Set KEEP=1 to keep $W (printed) for a look.
# A baseline of the noise: bash bench/diff_cli.sh OLD OLD must report 0.
# The environment passes through: GRAFT_REFERENCE=1 runs both on the plain-C
# reference path.  The whole matrix (~100 cases, ~350 commands) takes about
# 10 minutes on 2 busy cores; one process at a time (it is a bench, not a test).
# An old binary: git worktree add /tmp/old REV && make -C /tmp/old build/graft.
set -u
OLD=${1:?usage: diff_cli.sh OLD_GRAFT NEW_GRAFT [REGEX]}
NEW=${2:?usage: diff_cli.sh OLD_GRAFT NEW_GRAFT [REGEX]}
ONLY=${3:-}
OLD=$(readlink -f "$OLD") NEW=$(readlink -f "$NEW")
PY=/usr/bin/python3
ROOT=$(pwd)
GEN=$ROOT/tests/fixtures/gen_cli.py
MUT=$ROOT/tests/fixtures/mutate_gft.py
DATA=$(readlink -f "${GRAFT_DATA:-../shared/data}" 2>/dev/null || true)
TD=$DATA/weights/darknet-tiny
[ -f "$GEN" ] || { echo "diff_cli: run from the repository root (no $GEN)"; exit 2; }
"$PY" -c 'import numpy, PIL' 2>/dev/null || { echo "diff_cli: /usr/bin/python3 needs numpy and PIL"; exit 2; }

W=$(mktemp -d /tmp/graft-diffcli-XXXXXX)
[ "${KEEP:-0}" = 1 ] && echo "work dir: $W" || trap 'rm -rf "$W"' EXIT
I=$W/in            # the inputs, shared by both binaries (never written by a case)
mkdir -p "$I" "$W/old" "$W/new"
export GRAFT_HOME=$W/home GRAFT_OFFLINE=1
unset GRAFT_MIRROR

# ---------------------------------------------------------------- inputs
"$PY" "$GEN" cifar "$I/train.bin" 300 1 && "$PY" "$GEN" cifar "$I/test.bin" 100 2 \
  && "$PY" "$GEN" folder "$I/fold" 6 3 && "$PY" "$GEN" folder "$I/fold_val" 3 4 \
  && mkdir -p "$I/imgs" && "$PY" "$GEN" images "$I/imgs" || { echo "diff_cli: gen_cli.py failed"; exit 2; }
cp tests/fixtures/cli/tiny.cfg "$I/tiny.cfg"
# a second base for the comma list / probe: a wider first conv
sed '0,/filters=8/s//filters=12/' "$I/tiny.cfg" >"$I/tiny2.cfg"
# a CIFAR directory (data_batch_1.bin + test_batch.bin) for --split
mkdir -p "$I/cifdir" && cp "$I/train.bin" "$I/cifdir/data_batch_1.bin" && cp "$I/test.bin" "$I/cifdir/test_batch.bin"
# a folder with a corrupt image (--skip-bad), a CSV list, labels for predict --base
cp -r "$I/fold" "$I/fold_bad" && head -c 100 "$I/fold/red/00.png" >"$I/fold_bad/red/zz.png"
{ for c in red green blue; do for k in 00 01 02 03 04 05; do echo "$I/fold/$c/$k.png,$c"; done; done; } >"$I/list.csv"
mkdir -p "$I/imgdir" && cp "$I/imgs/c0.png" "$I/imgs/c3.jpg" "$I/imgs/c7.png" "$I/imgdir/"
# CIFAR-100 records (coarse label, fine label, 3072 bytes): coarse = fine % 4
"$PY" - "$I/c100.bin" <<'EOF' || exit 2
import sys, numpy as np
rng = np.random.default_rng(3)
with open(sys.argv[1], "wb") as f:
    for i in range(120):
        fine = i % 8
        img = np.clip(rng.normal(30 * fine, 20, (3, 32, 32)), 0, 255).astype(np.uint8)
        f.write(bytes([fine % 4, fine]) + img.tobytes())
EOF
HAVE_TD=0
if [ -f "$TD/tiny.cfg" ] && [ -f "$TD/tiny.weights" ]; then
  HAVE_TD=1
  # --weights-partial: the real cfg with one more conv than the weights file holds
  { cat "$TD/tiny.cfg"; printf '\n[convolutional]\nfilters=7\nsize=1\nstride=1\npad=1\nactivation=linear\n'; } >"$I/tiny_plus.cfg"
  # fetch: a local mirror holding the canonical files
  mkdir -p "$I/mirror" && cp "$TD/tiny.cfg" "$TD/tiny.weights" "$I/mirror/" && cp "$TD/imagenet1k.shortnames.txt" "$I/mirror/imagenet.shortnames.list"
fi
"$OLD" train --help >/dev/null 2>&1 || { echo "diff_cli: $OLD does not run"; exit 2; }

B=(--base "darknet:$I/tiny.cfg" --weights none)
H=(--head flatten,dense:10:softmax)
TR=(train "${B[@]}" "${H[@]}" --data "$I/train.bin" --epochs 2)
TC=(train "${B[@]}" "${H[@]}" --data "$I/cifdir" --epochs 2)
FB=(train "${B[@]}" --head flatten,dense:3:softmax --data "$I/fold" --epochs 2)

# ---------------------------------------------------------------- running
N=0
# g ARGS...: one graft command of the case, its outputs in out.N / err.N, its exit code in rc.txt
g() {
  N=$((N + 1))
  "$GRAFT" "$@" >"out.$N" 2>"err.$N"
  echo "$N $*: rc=$?" >>rc.txt
}

# Compares the files of $W/old/$1 and $W/new/$1; prints the differences.
compare() {
  "$PY" - "$W/old/$1" "$W/new/$1" <<'EOF'
import csv, io, json, os, re, struct, subprocess, sys
a_dir, b_dir = sys.argv[1], sys.argv[2]
def files(d):
    out = set()
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.relpath(os.path.join(root, n), d)
            if not p.endswith(".lock"):
                out.add(re.sub(r"events\.out\.tfevents\..*", "events.out.tfevents.X", p))
    return out
MASKS = [(r'[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?( ?)(s|ms|sec)\b', r'<t>\3\4'),
         (r'[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)? ?(img|images|samples)/s', '<rate>'),
         (r'"([a-z_]*(second|_ms|ms_|time|elapsed|rss|started)[a-z_]*)": ?[-0-9.e+]+', r'"\1": <t>'),
         (r'[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z', '<date>'),
         (r'events\.out\.tfevents\.[0-9]+\.[^ ."]+\.[0-9]+\.graft', 'events.out.tfevents.X'),
         (r'\b(gap|flat)( +[0-9]+ +[-0-9.]+ +[-0-9.]+) +[0-9.]+ +[0-9.]+', r'\1\2 <t> <t>'),
         (r'(<tr( class=best)?>(<td class=n>[^<]*</td>){6})<td class=n>[0-9.]+</td></tr>', r'\1<td class=n><t></td></tr>'),
         (r'127\.0\.0\.1:[0-9]+', '127.0.0.1:<port>'),
         (r'pid [0-9]+', 'pid <n>'), (r'[0-9.]+ MB', '<mb> MB'),
         (r'(/tmp/graft-diffcli-)[A-Za-z0-9]+', r'\1X')]
def mask_text(t):
    for p, r in MASKS:
        t = re.sub(p, r, t)
    return t
def csv_rows(path):
    rows = list(csv.reader(open(path, newline="")))
    if rows and "seconds" in rows[0]:
        k = rows[0].index("seconds")
        for r in rows[1:]:
            if k < len(r): r[k] = "<t>"
    return "\n".join(",".join(r) for r in rows)
def varint(b, i):
    x = s = 0
    while True:
        c = b[i]; i += 1
        x |= (c & 0x7f) << s; s += 7
        if c < 0x80: return x, i
def fields(b):
    i, out = 0, []
    while i < len(b):
        key, i = varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0: v, i = varint(b, i)
        elif wt == 1: v = b[i:i + 8]; i += 8
        elif wt == 5: v = b[i:i + 4]; i += 4
        elif wt == 2:
            n, i = varint(b, i); v = b[i:i + n]; i += n
        else: raise ValueError("wire type %d" % wt)
        out.append((f, v))
    return out
def tfevents(path):   # (step, tag, value) of each scalar, wall times and speed tags left out
    b, i, out = open(path, "rb").read(), 0, []
    while i + 12 <= len(b):
        n = struct.unpack_from("<Q", b, i)[0]
        ev = b[i + 12:i + 12 + n]; i += 12 + n + 4
        step = 0
        for f, v in fields(ev):
            if f == 2: step = v
            if f == 3: out.append((step, "file_version", v.decode()))
            if f == 5:
                for sf, sv in fields(v):
                    if sf != 1: continue
                    tag, val = "", None
                    for vf, vv in fields(sv):
                        if vf == 1: tag = vv.decode()
                        if vf == 2: val = struct.unpack("<f", vv)[0]
                    if not re.search(r"second|speed|images_per|time", tag):
                        out.append((step, tag, val))
    return "\n".join(map(str, out))
def run_json(path):
    def clean(x):
        if isinstance(x, dict):
            return {k: ("<t>" if re.search(r"second|rss|time|date|elapsed|host|started|_ms|ms_", k) else clean(v))
                    for k, v in x.items()}
        if isinstance(x, list): return [clean(v) for v in x]
        return x
    return json.dumps(clean(json.load(open(path))), indent=1, sort_keys=True)
def view(path):
    base = os.path.basename(path)
    if re.match(r"(out|err)\.\d+$", base) or base.endswith(".txt") or base.endswith(".tty"):
        return mask_text(open(path, errors="replace").read())
    if base.endswith(".csv"): return csv_rows(path)
    if "tfevents" in base: return tfevents(path)
    if base == "run.json": return mask_text(run_json(path))
    if base.endswith(".html") or base.endswith(".svg"): return mask_text(open(path, errors="replace").read())
    return open(path, "rb").read()
def real(d, p):   # the file behind a listed name (the event file's name holds a time and a pid)
    if p.endswith("events.out.tfevents.X"):
        sub = os.path.join(d, os.path.dirname(p))
        return os.path.join(sub, next(n for n in os.listdir(sub) if n.startswith("events.out.tfevents.")))
    return os.path.join(d, p)
fa, fb = files(a_dir), files(b_dir)
bad = []
for p in sorted(fa - fb): bad.append("  only in OLD: %s" % p)
for p in sorted(fb - fa): bad.append("  only in NEW: %s" % p)
for p in sorted(fa & fb):
    try:
        va, vb = view(real(a_dir, p)), view(real(b_dir, p))
    except Exception as e:
        bad.append("  %s: unreadable (%s)" % (p, e)); continue
    if va == vb: continue
    if isinstance(va, bytes):
        k = next((j for j in range(min(len(va), len(vb))) if va[j] != vb[j]), min(len(va), len(vb)))
        bad.append("  %s: bytes differ (sizes %d / %d, first at byte %d)" % (p, len(va), len(vb), k))
        continue
    la, lb = va.splitlines(), vb.splitlines()
    shown = 0
    bad.append("  %s:" % p)
    import difflib
    for line in difflib.unified_diff(la, lb, "OLD", "NEW", lineterm="", n=0):
        if line.startswith(("---", "+++", "@@")): continue
        bad.append("    " + line[:220]); shown += 1
        if shown >= 12: bad.append("    ..."); break
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
}

CASES=() SKIPPED=() DIFFER=()
# case NAME: runs the function c_NAME with each binary and compares
case_run() {
  local name=$1 side bin
  [ -n "$ONLY" ] && ! [[ $name =~ $ONLY ]] && return
  for side in old new; do
    [ $side = old ] && bin=$OLD || bin=$NEW
    rm -rf "$W/run" "$W/home" && mkdir -p "$W/run" "$W/home"
    ( cd "$W/run" && GRAFT=$bin N=0 && "c_$name" )
    mv "$W/run" "$W/$side/$name"
  done
  CASES+=("$name")
  [ -f "$W/skipped.txt" ] && SKIPPED+=("$(cat "$W/skipped.txt")") && rm -f "$W/skipped.txt"
  local d
  if d=$(compare "$name"); then echo "same    $name"
  else echo "DIFFER  $name"; echo "$d"; DIFFER+=("$name"); fi
}
need_td() { [ $HAVE_TD = 1 ] || { echo "$1: no $TD" >../skipped.txt; return 1; }; }

# ---------------------------------------------------------------- cases
# Each c_NAME runs in $W/run.  Options are listed where first set to a
# non-default value; a later case may repeat them in combination.

# ---- train
c_train_basic() { g "${TR[@]}" --test "$I/test.bin" --out m.gft --log log.csv; g eval --model m.gft --data "$I/test.bin" --json; }
c_train_default_out() { g "${TR[@]}" --epochs 1; }
c_train_val_split() { g "${TR[@]}" --val-split 0.2 --out m.gft --log log.csv; }
c_train_val() { g "${TR[@]}" --val "$I/test.bin" --out m.gft --log log.csv; }
c_train_patience() { g "${TR[@]}" --epochs 4 --val-split 0.2 --patience 1 --monitor val_loss --keep best --out m.gft --log log.csv; }
c_train_monitor_acc() { g "${TR[@]}" --epochs 3 --val "$I/test.bin" --monitor val_accuracy --keep last --patience 2 --out m.gft --log log.csv; }
c_train_keep_best() { g "${TR[@]}" --epochs 3 --val-split 0.3 --keep best --out m.gft --log log.csv; }
c_train_resume() {
  g "${TR[@]}" --checkpoint ck.ckpt --out m.gft --log log.csv
  cp ck.ckpt ck0.ckpt
  g train --resume ck.ckpt --epochs 3
  g train --resume ck0.ckpt --epochs 3 --quiet --threads 1
}
c_train_from() { g "${TR[@]}" --out m.gft; g train --from m.gft --data "$I/train.bin" --epochs 1 --out m2.gft --log l2.csv; }
c_train_from_unfreeze() { g "${TR[@]}" --out m.gft; g train --from m.gft --data "$I/train.bin" --epochs 1 --unfreeze 2 --out m2.gft; }
c_train_cut() { g "${TR[@]}" --cut 1 --out m.gft --log log.csv; }
c_train_cut_name() { g "${TR[@]}" --cut 2/bn --out m.gft; }
c_train_cut_auto() { g "${TR[@]}" --cut auto --out m.gft --log log.csv; }
c_train_base_list() { g train --base "darknet:$I/tiny.cfg,darknet:$I/tiny2.cfg" --weights none "${H[@]}" --data "$I/train.bin" --epochs 1 --out m.gft; }
c_train_base_list_cut_auto() { g train --base "darknet:$I/tiny.cfg,darknet:$I/tiny2.cfg" --weights none,none "${H[@]}" --data "$I/train.bin" --epochs 1 --cut auto --out m.gft; }
c_train_unfreeze() { g "${TR[@]}" --unfreeze 2 --out m.gft --log log.csv; }
c_train_unfreeze_opts() { g "${TR[@]}" --unfreeze 0 --base-lr-mult 0.1 --bn-train --out m.gft --log log.csv; }
c_train_head_gap() { g train "${B[@]}" --head gap,dense:N:softmax --data "$I/train.bin" --epochs 2 --out m.gft --log log.csv; }
c_train_head_mix() { g train "${B[@]}" --head flatten,dropout:0.3,dense:32:relu,batchnorm,dense:10:softmax --data "$I/train.bin" --epochs 2 --out m.gft --log log.csv; }
c_train_default_head() { g train "${B[@]}" --data "$I/train.bin" --epochs 1 --out m.gft; }
c_train_input_size() { g "${TR[@]}" --input-size 48x40 --out m.gft; g info m.gft; }
c_train_input_size_folder() { g "${FB[@]}" --input-size 40 --out m.gft; g info m.gft; }
c_train_folder_recipe() { g "${FB[@]}" --input-size 40x40 --resize crop --crop-fraction 0.875 --interpolation bilinear --preprocess torch --out m.gft --log log.csv; g info m.gft; }
c_train_folder_crop() { g "${FB[@]}" --input-size 40x48 --crop --preprocess caffe --out m.gft; g info m.gft; }
c_train_folder_stretch() { g "${FB[@]}" --input-size 40x48 --resize stretch --interpolation darknet --preprocess tf --out m.gft; g info m.gft; }
c_train_folder_none() { g "${FB[@]}" --resize letterbox --preprocess none --val "$I/fold_val" --out m.gft; }
c_train_skip_bad() { g train "${B[@]}" --head flatten,dense:3:softmax --data "$I/fold_bad" --skip-bad --epochs 1 --out m.gft; g train "${B[@]}" --head flatten,dense:3:softmax --data "$I/fold_bad" --epochs 1 --out m2.gft; }
c_train_csv() { g train "${B[@]}" --head flatten,dense:3:softmax --data "$I/list.csv" --format csv --epochs 1 --out m.gft; }
c_train_format() { g "${TR[@]}" --format cifar10 --out m.gft; g "${TR[@]}" --format folder --out m2.gft; }
c_train_split() { g "${TC[@]}" --split test --test "$I/cifdir" --out m.gft; g "${TC[@]}" --out m2.gft; }
c_train_cifar100() { g train "${B[@]}" --head flatten,dense:4:softmax --data "$I/c100.bin" --format cifar100 --labels coarse --epochs 1 --out m.gft; g train "${B[@]}" --head flatten,dense:8:softmax --data "$I/c100.bin" --format cifar100 --labels fine --epochs 1 --out m2.gft; }
c_train_augment() { g "${TR[@]}" --augment --out m.gft --log log.csv; }
c_train_lr_auto() { g "${TR[@]}" --lr auto --out m.gft --log log.csv; }
c_train_lr_auto_resume() { g "${TR[@]}" --lr auto --checkpoint ck.ckpt --out m.gft; g train --resume ck.ckpt --epochs 3; }
c_train_lr() { g "${TR[@]}" --lr 0.05 --out m.gft --log log.csv; }
c_train_sched_step() { g "${TR[@]}" --epochs 3 --lr-schedule step --lr-step 1 --lr-gamma 0.5 --out m.gft --log log.csv; }
c_train_sched_constant() { g "${TR[@]}" --lr-schedule constant --out m.gft --log log.csv; }
c_train_sched_inverse() { g "${TR[@]}" --lr-schedule inverse-time --decay 0.01 --out m.gft --log log.csv; }
c_train_sched_cosine_warmup() { g "${TR[@]}" --epochs 3 --lr-schedule cosine --warmup 1 --out m.gft --log log.csv; }
c_train_adam() { g "${TR[@]}" --optimizer adam --out m.gft --log log.csv; }
c_train_adam_inverse() { g "${TR[@]}" --optimizer adam --lr-schedule inverse-time --decay 0.001 --out m.gft --log log.csv; }
c_train_adamw() { g "${TR[@]}" --optimizer adamw --weight-decay 0.001 --lr 0.002 --out m.gft --log log.csv; }
c_train_adamw_default_wd() { g "${TR[@]}" --optimizer adamw --out m.gft; }
c_train_sgd_opts() { g "${TR[@]}" --optimizer sgd --momentum 0.5 --no-nesterov --weight-decay 0.0005 --out m.gft --log log.csv; }
c_train_nesterov() { g "${TR[@]}" --no-nesterov --nesterov --out m.gft; }
c_train_loss() { g "${TR[@]}" --loss sparse --label-smoothing 0.1 --out m.gft --log log.csv; }
c_train_no_standardize() { g "${TR[@]}" --no-standardize --out m.gft --log log.csv; }
c_train_decay() { g "${TR[@]}" --decay 0.001 --out m.gft --log log.csv; }
c_train_seed_batch() { g "${TR[@]}" --seed 7 --batch 16 --threads 1 --out m.gft --log log.csv; }
c_train_big_seed() { g "${TR[@]}" --seed 18446744073709551615 --epochs 1 --out m.gft; }
c_train_no_cache() { g "${TR[@]}" --no-cache --out m.gft --log log.csv; }
c_train_json() { g "${TR[@]}" --json --test "$I/test.bin" --out m.gft; }
c_train_quiet() { g "${TR[@]}" --quiet --out m.gft; g "${TR[@]}" -q --out m2.gft; }
c_train_report() { g "${TR[@]}" --val-split 0.2 --test "$I/test.bin" --report rep --tensorboard tb --out m.gft; g report rep; g eval --model m.gft --data "$I/test.bin" --report rep -q; }
c_train_log_ckpt() { g "${TR[@]}" --checkpoint keep.ckpt --log log.csv --out m.gft; }
c_train_equals() { g "${TR[@]}" --epochs=1 --out=m.gft; }
c_train_double_dash() { g "${TR[@]}" --epochs 1 --out m.gft -- extra; }
# the real Tiny Darknet: its weights, a cut, and --weights-partial
c_train_tiny_darknet() {
  need_td train_tiny_darknet || return 0
  g train --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --cut 7 --head gap,dense:3:softmax --data "$I/fold" --input-size 32 --epochs 2 --out m.gft --log log.csv
  g eval --model m.gft --data "$I/fold" --json
  g predict --model m.gft "$I/imgs/c0.png" "$I/imgs/c3.jpg"
}
c_train_weights_partial() {
  need_td train_weights_partial || return 0
  g train --base "darknet:$I/tiny_plus.cfg" --weights "$TD/tiny.weights" --cut 3 "${H[@]}" --data "$I/train.bin" --epochs 1 --out m.gft
  g train --base "darknet:$I/tiny_plus.cfg" --weights "$TD/tiny.weights" --weights-partial --cut 3 "${H[@]}" --data "$I/train.bin" --epochs 1 --out m2.gft
}
# --from a folder model: its input size and recipe, overridden by options
c_train_from_recipe() {
  g "${FB[@]}" --input-size 40x36 --crop --preprocess torch --out m.gft
  g train --from m.gft --data "$I/fold" --epochs 1 --val-split 0.3 --test "$I/fold_val" --out m2.gft --log l2.csv
  g train --from m.gft --data "$I/fold" --epochs 1 --resize stretch --preprocess caffe --interpolation bilinear --out m3.gft
  g info m3.gft -q
  g train --from m.gft --data "$I/fold" --epochs 1 --crop-fraction 0.7 --out m4.gft --no-standardize --lr-schedule constant
}
# --resume takes every setting back from the checkpoint: runs with many
# settings, checkpointed, then extended
c_train_resume_settings() {
  g train "${B[@]}" --head flatten,dense:3:softmax --data "$I/fold" --input-size 40 --crop --preprocess torch \
    --val-split 0.3 --patience 3 --monitor val_loss --keep best --augment --optimizer adam --lr-schedule step \
    --lr-step 1 --lr-gamma 0.5 --label-smoothing 0.05 --seed 5 --batch 4 --epochs 2 --checkpoint ck.ckpt --log log.csv --out m.gft
  g train --resume ck.ckpt --epochs 4
  g eval --model m.gft --data "$I/fold_val" --json
}
c_train_resume_data() {
  g "${TC[@]}" --split test --checkpoint ck.ckpt --out m.gft --log log.csv
  g train --resume ck.ckpt --epochs 3
  g train "${B[@]}" --head flatten,dense:4:softmax --data "$I/c100.bin" --format cifar100 --labels coarse --test "$I/c100.bin" \
    --epochs 1 --checkpoint ck2.ckpt --out m2.gft --no-standardize --momentum 0.8 --no-nesterov --warmup 0.5 --weight-decay 0.001
  g train --resume ck2.ckpt --epochs 2
  g train "${B[@]}" --head flatten,dense:3:softmax --data "$I/fold_bad" --skip-bad --epochs 1 --checkpoint ck3.ckpt --out m3.gft --no-cache
  g train --resume ck3.ckpt --epochs 2
  g train "${B[@]}" --head flatten,dense:3:softmax --data "$I/fold" --epochs 1 --unfreeze 2 --base-lr-mult 0.5 --bn-train --checkpoint ck4.ckpt --out m4.gft
  g train --resume ck4.ckpt --epochs 2
}
# --resume with settings given again or changed: taken, or refused
c_train_resume_override() {
  g "${TR[@]}" --checkpoint ck.ckpt --out m.gft
  g "${TR[@]}" --lr auto --checkpoint cka.ckpt --out ma.gft
  local o
  for o in "--lr 0.05" "--lr auto" "--batch 16" "--seed 3" "--optimizer adam" "--val-split 0.2" "--data $I/test.bin" \
           "--out other.gft" "--log x.csv" "--no-cache" "--augment" "--epochs 3 --lr-schedule constant" "--epochs 3 --threads 1" \
           "--epochs 3 --json" "--epochs 3 --report rep" "--epochs 3 --tensorboard tb" "--epochs 3 --checkpoint ck2.ckpt" \
           "--epochs 3 --keep best" "--epochs 3 --test $I/test.bin" "--epochs 3 --format cifar10" "--epochs 3 --skip-bad"; do
    cp ck.ckpt r.ckpt; cp cka.ckpt ra.ckpt
    # shellcheck disable=SC2086
    g train --resume r.ckpt $o
    # shellcheck disable=SC2086
    g train --resume ra.ckpt $o -q
  done
  rm -f r.ckpt ra.ckpt
}
# the features cache: reused only for the same base, weights, cut, data and recipe
c_cache() {
  local o
  for o in "" "" "--preprocess caffe" "--crop" "--input-size 40" "--interpolation bilinear" "--cut 1" "--seed 2" \
           "--val-split 0.3" "--resize stretch" "--batch 4" ""; do
    # shellcheck disable=SC2086
    g train "${B[@]}" --head flatten,dense:3:softmax --data "$I/fold" --epochs 1 $o --out m.gft
  done
  for f in "$GRAFT_HOME"/cache/features/*; do [ -f "$f" ] && truncate -s 100 "$f"; done
  g train "${B[@]}" --head flatten,dense:3:softmax --data "$I/fold" --epochs 1 --out m2.gft
  g train "${B[@]}" --head flatten,dense:3:softmax --data "$I/fold" --epochs 1 --out m3.gft
  (cd "$GRAFT_HOME" && find . -type f | sort | sed 's/[0-9a-f]\{64\}/<hash>/') >home.txt
}
c_report_probe() {
  g "${TR[@]}" --cut auto --report rep --out m.gft
  g "${TR[@]}" --lr auto --val-split 0.2 --report rep3 --out m3.gft
  g train --base "darknet:$I/tiny.cfg,darknet:$I/tiny2.cfg" --weights none "${H[@]}" --data "$I/train.bin" --epochs 1 --report rep2 --out m2.gft
  g report rep
}
# wrong inputs: mutated model files, weights files, divergence (errors, never a number)
c_wrong() {
  g "${TR[@]}" --epochs 1 --out m.gft
  "$PY" "$MUT" nan m.gft nan.gft dense/kernel && "$PY" "$MUT" classes m.gft cls.gft 5 \
    && "$PY" "$MUT" swap m.gft swap.gft dense/kernel && "$PY" "$MUT" extra m.gft extra.gft bogus \
    && "$PY" "$MUT" darknet "$I/tiny.cfg" w.weights 3 && "$PY" "$MUT" darknet "$I/tiny.cfg" w1.weights 3 1 || echo "mutate_gft.py failed" >>rc.txt
  local f
  for f in nan cls swap extra; do
    g eval --model $f.gft --data "$I/test.bin" --json
    g predict --model $f.gft "$I/imgs/c0.png"
    g train --from $f.gft --data "$I/train.bin" --epochs 1 --out o_$f.gft
    g info $f.gft -q
  done
  g train --base "darknet:$I/tiny.cfg" --weights w.weights "${H[@]}" --data "$I/train.bin" --epochs 1 --out wm.gft --log w.csv
  g train --base "darknet:$I/tiny.cfg" --weights w1.weights "${H[@]}" --data "$I/train.bin" --epochs 1 --out w1.gft
  g train --base "darknet:$I/tiny.cfg" --weights w1.weights --weights-partial "${H[@]}" --data "$I/train.bin" --epochs 1 --out w1p.gft
  g extract --base "darknet:$I/tiny.cfg" --weights w.weights --data "$I/test.bin" --layer 3 --out w.npy -q
  g info --base "darknet:$I/tiny.cfg" --weights w.weights --json
  g probe --base "darknet:$I/tiny.cfg" --weights w.weights --data "$I/train.bin" --samples 100 --json
  g "${TR[@]}" --lr 1e30 --no-standardize --out div.gft
  g "${TR[@]}" --lr 1e30 --optimizer adam --out div2.gft
}
# the built-in architectures, untrained (--weights none), on 100 CIFAR records
c_vgg16() {
  head -c $((3073 * 100)) "$I/train.bin" >s.bin
  g train --base vgg16 --weights none --data s.bin --cut block3_pool --head gap,dense:10:softmax --epochs 1 --batch 25 --out v.gft --log v.csv
  g train --base vgg16 --weights none --data s.bin --cut block3_pool --unfreeze block3_conv3 --head gap,dense:10:softmax --epochs 1 --batch 25 --out u.gft
  g extract --base vgg16 --weights none --data s.bin --layer block2_pool --out f.npy -q
  g eval --model u.gft --data s.bin --json
  rm -f s.bin
}
# a random VGG16 base in every weights layout graft reads (tests/fixtures/gen_weights.py big:
# Keras 1 and 2 .h5, Keras 3 .weights.h5, torchvision safetensors), loaded by the CLI
c_vgg16_weights() {
  local V=$W/vggw
  [ -f "$V/vgg_torch.safetensors" ] || { mkdir -p "$V" && "$PY" "$ROOT/tests/fixtures/gen_weights.py" big "$V" >/dev/null 2>&1; } \
    || { echo "vgg16_weights: gen_weights.py big failed (needs torch, h5py)" >../skipped.txt; return 0; }
  head -c $((3073 * 40)) "$I/train.bin" >s.bin
  local f
  for f in vgg_k1.h5 vgg_k2.h5 vgg.weights.h5 vgg_torch.safetensors; do
    g info "$V/$f" -q
    g info --base vgg16 --input-size 32 --weights "$V/$f" -q
    g extract --base vgg16 --weights "$V/$f" --data s.bin --layer block4_pool --out "x_$f.npy" -q
  done
  g train --base vgg16 --weights "$V/vgg_k2.h5" --data s.bin --cut block4_pool --head gap,dense:10:softmax --epochs 1 --batch 20 --out k.gft --log k.csv
  g train --base vgg16 --weights "$V/vgg_torch.safetensors" --preprocess torch --data s.bin --head gap,dense:10:softmax --epochs 1 --batch 20 --out t.gft
  g info --base resnet50 --weights "$V/vgg_k2.h5" --input-size 32 -q
  rm -f s.bin
}
c_resnet50() {
  head -c $((3073 * 60)) "$I/train.bin" >s.bin
  g extract --base resnet50 --weights none --data s.bin --layer conv3_block1_out --out f.npy -q
  g train --base resnet50 --weights none --data s.bin --cut conv3_block1_out --head gap,dense:10:softmax --epochs 1 --batch 20 --out r.gft --log r.csv
  g train --base resnet50 --weights none --data s.bin --cut conv3_block1_out --unfreeze conv3_block1_2_conv --head gap,dense:10:softmax --epochs 1 --batch 20 --out u.gft
  g predict --model u.gft "$I/imgs/c0.png"
  rm -f s.bin
}
# validation and test folders go through the same recipe as the training data
c_train_val_test_folder() {
  g "${FB[@]}" --input-size 40x36 --crop --crop-fraction 0.8 --preprocess caffe --val "$I/fold_val" --test "$I/fold_val" --log log.csv --out m.gft
  g "${FB[@]}" --input-size 40x36 --resize stretch --interpolation bilinear --val "$I/fold_val" --test "$I/list.csv" --log log2.csv --out m2.gft
}
# ^C: exit 130, a checkpoint and the hint; the resumed run ends with the uninterrupted run's model
c_train_interrupt() {
  "$PY" "$GEN" cifar big.bin 2000 9 >/dev/null
  local args=(train "${B[@]}" "${H[@]}" --data big.bin --no-cache --batch 8 --epochs 6 --out m.gft)
  "$GRAFT" "${args[@]}" --out whole.gft -q >/dev/null 2>&1
  "$GRAFT" "${args[@]}" >int.out 2>int.err & local pid=$!
  local k; for k in $(seq 600); do grep -q '^Epoch 1/6' int.out 2>/dev/null && break; sleep 0.05; done
  kill -INT $pid; wait $pid; echo "interrupted: rc=$?" >>rc.txt
  grep -E '^graft: (continue|no checkpoint)' int.err | sed 's/[0-9]\+ of/N of/' >>rc.txt
  "$GRAFT" train --resume m.gft.ckpt -q >/dev/null 2>resume.err; echo "resumed: rc=$?" >>rc.txt
  grep -E '^graft: error' resume.err >>rc.txt   # (not the loss warning: it depends on where ^C fell)
  rm -f resume.err
  cmp -s m.gft whole.gft && echo "resumed == uninterrupted" >>rc.txt || echo "resumed != uninterrupted" >>rc.txt
  rm -f int.out int.err big.bin
}
# a tflite base (its weights inside)
TFL=$DATA/weights/coral-tflite/mobilenet_v1_0.25_128_quant.tflite
c_tflite() {
  [ -f "$TFL" ] || { echo "tflite: no $TFL" >../skipped.txt; return 0; }
  g info "$TFL" -q
  g info --base "tflite:$TFL" --input-size 64 -q
  g extract --base "tflite:$TFL" --data "$I/fold" --layer 3 --out t.npy --input-size 64 -q
  g train --base "tflite:$TFL" --head gap,dense:3:softmax --data "$I/fold" --input-size 64 --epochs 2 --out m.gft --log log.csv
  g predict --model m.gft "$I/imgs/c0.png" "$I/imgs/c3.jpg"
  g predict --base "tflite:$TFL" --labels "$DATA/weights/coral-tflite/imagenet_labels.txt" --top 3 "$DATA/images/dog.jpg"
  g train --base "tflite:$TFL" --weights none --data "$I/fold" --epochs 1 --out bad.gft
}
c_train_base_list_bad() {
  g train --base "darknet:$I/tiny.cfg,darknet:$I/tiny2.cfg" --weights none,none,none "${H[@]}" --data "$I/train.bin" --epochs 1 --out m.gft
  g train --base "darknet:$I/tiny.cfg,nosuch" --weights none "${H[@]}" --data "$I/train.bin" --epochs 1 --out m.gft
}
# bad values: the exit code and the message (wording may change; codes and refusals may not)
c_train_bad() {
  local bad
  for bad in "--seed -1" "--seed x" "--seed 1.5" "--lr -1" "--lr 0" "--lr x" "--val-split 1" "--val-split -0.1" \
             "--epochs 0" "--batch 0" "--threads -1" "--momentum 1" "--label-smoothing 1" "--lr-gamma 1" \
             "--warmup 2" "--patience 1" "--monitor val_loss" "--bn-train" "--base-lr-mult 0.5" \
             "--optimizer foo" "--lr-schedule foo" "--monitor foo" "--loss foo" "--keep foo" "--format foo" \
             "--labels foo" "--split foo" "--input-size 3x" "--resize foo" "--crop-fraction 2" "--crop-fraction 0" \
             "--interpolation foo" "--preprocess foo" "--cut nosuch" "--unfreeze nosuch" "--unfreeze 3" \
             "--head bad:1" "--head flatten,dense:7:softmax" "--val $I/test.bin --val-split 0.2" "--nosuch" \
             "--epochs" "--lr-step 0" "--patience 0" "--data $I/missing.bin" "--test $I/c100.bin" \
             "--from m.gft" "--resume m.gft" "--quiet=1" "--lr" "--out $I/train.bin" "--log $I/tiny.cfg" \
             "--epochs 1.5" "--batch 99999999999" "--weights $I/tiny.cfg"; do
    # shellcheck disable=SC2086
    g "${TR[@]}" $bad --out bad.gft
  done
  g train --data "$I/train.bin"
  g train "${B[@]}"
  g train --from x.gft --base "darknet:$I/tiny.cfg" --data "$I/train.bin"
  g train --resume x.ckpt --base "darknet:$I/tiny.cfg"
  g train --resume x.ckpt --cut 1
  g train --resume x.ckpt --crop
  g train --from x.gft --weights none --data "$I/train.bin"
  g train --from x.gft --input-size 40 --data "$I/train.bin"
  g train "${B[@]}" --data "$I/train.bin" --head flatten,dense:10:softmax --epochs 1 --out same.gft --checkpoint same.gft
  g train extra "${B[@]}" --data "$I/train.bin"
}
c_train_resume_bad() {
  g "${TR[@]}" --checkpoint ck.ckpt --out m.gft
  g train --resume ck.ckpt --epochs 1
  g train --resume m.gft
  g train --resume ck.ckpt --base "darknet:$I/tiny.cfg"
  g train --resume ck.ckpt --weights none
  g train --resume nosuch.ckpt
}

# ---- eval
c_eval() {
  g "${TR[@]}" --out m.gft
  g eval --model m.gft --data "$I/test.bin"
  g eval --model m.gft --data "$I/test.bin" --json --batch 7 --threads 1
  g eval --model m.gft --data "$I/test.bin" --quiet
  g eval --model m.gft --data "$I/test.bin" -q --json
  g eval --model m.gft --data "$I/cifdir" --json
  g eval --model m.gft --data "$I/cifdir" --split train --json
  g eval --model m.gft --data "$I/test.bin" --format cifar10 --input-size 32x32 --json
  g eval --model m.gft --data "$I/test.bin" --input-size 40x40
  g eval --model m.gft --data "$I/test.bin" --report rep --json
}
c_eval_folder() {
  g "${FB[@]}" --input-size 40 --out m.gft
  g eval --model m.gft --data "$I/fold_val" --json
  g eval --model m.gft --data "$I/fold_val" --resize crop --crop-fraction 0.8 --json
  g eval --model m.gft --data "$I/fold_val" --crop --interpolation bilinear --json
  g eval --model m.gft --data "$I/fold_val" --preprocess caffe --json
  g eval --model m.gft --data "$I/fold_bad" --json
  g eval --model m.gft --data "$I/fold_bad" --skip-bad --json
  g eval --model m.gft --data "$I/list.csv" --format csv --json
  g eval --model m.gft --data "$I/test.bin"
}
c_eval_bad() {
  g "${TR[@]}" --epochs 1 --out m.gft
  g eval --model m.gft
  g eval --data "$I/test.bin"
  g eval --model m.gft --data "$I/test.bin" --batch 0
  g eval --model m.gft --data "$I/test.bin" --threads -2
  g eval --model m.gft --data "$I/test.bin" --nosuch
  g eval --model m.gft --data "$I/test.bin" --labels coarse
  g eval --model nosuch.gft --data "$I/test.bin"
  g eval --model "$I/tiny.cfg" --data "$I/test.bin"
  g eval --model m.gft --data "$I/c100.bin"
  g eval --model m.gft --data "$I/test.bin" stray
}

# ---- predict
c_predict_model() {
  g "${TR[@]}" --out m.gft
  g predict --model m.gft "$I/imgs/c0.png" "$I/imgs/c3.jpg" "$I/imgs/c7.png"
  g predict --model m.gft --top 2 --json "$I/imgs/c0.png" "$I/imgs/c3.jpg"
  g predict --model m.gft --top 20 --threads 1 -q "$I/imgs/c7.png"
  g predict --model m.gft "$I/imgdir"
  g predict --model m.gft "$I/imgs/c0.png" "$I/imgs/bad.png" "$I/imgs/c7.png"
  g predict --model m.gft --resize stretch --interpolation bilinear --preprocess tf "$I/imgs/c3.jpg"
  g predict --model m.gft --crop --crop-fraction 0.75 "$I/imgs/c3.jpg"
  g predict --model m.gft --input-size 64x64 "$I/imgs/c3.jpg"
}
c_predict_base() {
  need_td predict_base || return 0
  local L=$TD/imagenet1k.shortnames.txt
  g predict --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --labels "$L" "$DATA/images/dog.jpg" "$DATA/images/eagle.jpg"
  g predict --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --labels "$L" --top 3 --json "$DATA/images/cat.bmp"
  g predict --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --labels "$L" --json --quiet "$DATA/images/dog.jpg"
  g predict --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --labels "$L" --input-size 128x128 --resize stretch "$DATA/images/dog.jpg"
  g predict --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --labels "$L" --interpolation bilinear --preprocess torch --crop "$DATA/images/eagle.jpg"
  g predict --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" "$DATA/images/dog.jpg"
  g predict --base "darknet:$I/tiny_plus.cfg" --weights "$TD/tiny.weights" "$DATA/images/dog.jpg"
  g predict --base "darknet:$I/tiny_plus.cfg" --weights "$TD/tiny.weights" --weights-partial "$DATA/images/dog.jpg"
  g predict --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --labels "$I/tiny.cfg" "$DATA/images/dog.jpg"
}
c_predict_bad() {
  g "${TR[@]}" --epochs 1 --out m.gft
  g predict --model m.gft
  g predict "$I/imgs/c0.png"
  g predict --model m.gft --base "darknet:$I/tiny.cfg" "$I/imgs/c0.png"
  g predict --model m.gft --labels x "$I/imgs/c0.png"
  g predict --model m.gft --weights-partial "$I/imgs/c0.png"
  g predict --model m.gft --top 0 "$I/imgs/c0.png"
  g predict --model m.gft --format cifar10 "$I/imgs/c0.png"
  g predict --model m.gft "$I/fold_val/nosuch"
  g predict --model m.gft "$I/imgs/bad.png"
  g predict --model m.gft -- "$I/imgs/c0.png"
  g predict --model m.gft - </dev/null
}

# ---- extract
c_extract() {
  g extract "${B[@]}" --data "$I/train.bin" --layer 3 --out f.npy
  g extract "${B[@]}" --data "$I/test.bin" --layer 2/bn --out g --batch 7 --threads 1 --json
  g extract "${B[@]}" --data "$I/test.bin" --layer 1 --out h.npy --quiet
  g extract "${B[@]}" --data "$I/fold" --layer 3 --out fo.npy --input-size 40x48 --resize crop --crop-fraction 0.9 --interpolation bilinear --preprocess caffe
  g extract "${B[@]}" --data "$I/fold" --layer 3 --out fo2.npy --crop
  g extract "${B[@]}" --data "$I/cifdir" --split test --layer 3 --out s.npy -q
  g extract "${B[@]}" --data "$I/cifdir" --layer 3 --out s2.npy -q
  g extract "${B[@]}" --data "$I/list.csv" --format csv --layer 3 --out c.npy -q
  g extract "${B[@]}" --data "$I/fold_bad" --skip-bad --layer 3 --out sb.npy -q
  g extract "${B[@]}" --data "$I/c100.bin" --format cifar100 --labels coarse --layer 3 --out cc.npy -q
}
c_extract_bf16() {
  g extract "${B[@]}" --data "$I/test.bin" --layer 3 --out a.npy --precision fp32 -q
  g extract "${B[@]}" --data "$I/test.bin" --layer 3 --out b.npy --precision bf16 -q
  cmp -s a.npy b.npy && echo "bf16 == fp32 (no effect)" >bf16.txt || echo "bf16 != fp32" >bf16.txt
}
c_extract_tiny_darknet() {
  need_td extract_tiny_darknet || return 0
  g extract --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --data "$I/fold" --layer 7 --out t.npy
  g extract --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --data "$I/fold" --layer 7 --out tb.npy --precision bf16 -q
  g extract --base "darknet:$I/tiny_plus.cfg" --weights "$TD/tiny.weights" --weights-partial --data "$I/fold" --layer 7 --out tp.npy -q
  g extract --base "darknet:$I/tiny_plus.cfg" --weights "$TD/tiny.weights" --data "$I/fold" --layer 7 --out tq.npy -q
}
c_extract_bad() {
  g extract "${B[@]}" --data "$I/train.bin" --layer 3
  g extract "${B[@]}" --data "$I/train.bin" --layer nosuch --out x.npy
  g extract "${B[@]}" --data "$I/train.bin" --layer 3 --out x.npy --precision fp16
  g extract "${B[@]}" --data "$I/train.bin" --layer 3 --out x.npy --batch 0
  g extract "${B[@]}" --data "$I/train.bin" --layer 3 --out "$I/train.bin"
  g extract "${B[@]}" --data "$I/train.bin" --layer 3 --out x.npy --nosuch
  g extract "${B[@]}" --data "$I/train.bin" --layer 3 --out x.npy stray
  g extract --base nosuch --data "$I/train.bin" --layer 3 --out x.npy
}

# ---- probe
c_probe() {
  g probe "${B[@]}" --data "$I/train.bin" --samples 100
  g probe "${B[@]}" --base "darknet:$I/tiny2.cfg" --weights none --data "$I/train.bin" --samples 120 --folds 3 --seed 3 --batch 16 --threads 1 --json
  g probe "${B[@]}" --data "$I/train.bin" --cuts default --samples 80 --flat-max 0 --json
  g probe "${B[@]}" --data "$I/train.bin" --cuts 1,3 --samples 80 --quiet
  g probe "${B[@]}" --data "$I/train.bin" --cuts all-pools,2/bn --samples 80 -q --json
  g probe "${B[@]}" --base "darknet:$I/tiny.cfg" --weights none --data "$I/train.bin" --samples 60 --json
  g probe "${B[@]}" --data "$I/fold" --input-size 40 --crop --preprocess torch --json
  g probe "${B[@]}" --data "$I/cifdir" --split test --samples 50 --json
  g probe "${B[@]}" --data "$I/c100.bin" --format cifar100 --labels coarse --samples 60 --json
  g probe "${B[@]}" --data "$I/fold_bad" --skip-bad --json
}
c_probe_tiny_darknet() {
  need_td probe_tiny_darknet || return 0
  g probe --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --data "$I/fold" --input-size 64 --json
  g probe --base "darknet:$I/tiny_plus.cfg" --weights "$TD/tiny.weights" --weights-partial --data "$I/fold" --input-size 64 --cuts 7 --json
}
c_probe_bad() {
  g probe --data "$I/train.bin"
  g probe "${B[@]}"
  g probe --weights none --base "darknet:$I/tiny.cfg" --data "$I/train.bin"
  g probe "${B[@]}" --data "$I/train.bin" --folds 1
  g probe "${B[@]}" --data "$I/train.bin" --samples 0
  g probe "${B[@]}" --data "$I/train.bin" --seed -3
  g probe "${B[@]}" --data "$I/train.bin" --flat-max -1
  g probe "${B[@]}" --data "$I/train.bin" --cuts nosuch
  g probe "${B[@]}" --data "$I/train.bin" stray
}

# ---- info, fetch, report
c_info() {
  g "${TR[@]}" --epochs 1 --out m.gft
  g info m.gft
  g info m.gft --json
  g info m.gft --quiet
  g info --base "darknet:$I/tiny.cfg"
  g info --base "darknet:$I/tiny.cfg" --input-size 64x48 --json
  g info --base vgg16 --input-size 32 -q
  g info --base vgg16 --include-top --quiet
  g info --base resnet50 --input-size 64 --quiet
  g info --base tiny-darknet --input-size 64 --quiet
  g info
  g info a b
  g info --input-size x --base vgg16
  g info --nosuch
  g info nosuch.h5
}
c_info_weights() {
  need_td info_weights || return 0
  g info --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights"
  g info --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --json
  g info --base "darknet:$I/tiny_plus.cfg" --weights "$TD/tiny.weights"
  g info --base "darknet:$I/tiny_plus.cfg" --weights "$TD/tiny.weights" --weights-partial -q
}
c_fetch() {
  g fetch --list
  g fetch
  g fetch --nosuch
  g fetch nosuch
  g fetch tiny-darknet --force
  g fetch --offline tiny-darknet
}
c_fetch_mirror() {
  need_td fetch_mirror || return 0
  g fetch --offline --mirror "$I/mirror" tiny-darknet
  g fetch --offline --mirror "$I/mirror" --json tiny-darknet
  g fetch --offline --mirror="$I/mirror" --force --quiet tiny-darknet
  g fetch --list
  g predict --base tiny-darknet --top 2 "$DATA/images/dog.jpg"
  g info --base tiny-darknet --weights imagenet -q
  (cd "$GRAFT_HOME" && find . -type f | sort) >home.txt
}
# downloads from a local HTTP server (tests/fixtures/http_server.py): plain, and a dropped connection resumed
c_fetch_http() {
  need_td fetch_http || return 0
  mkdir -p www && cp "$I"/mirror/* www/
  "$PY" "$ROOT/tests/fixtures/http_server.py" www srv.log 60 >port.txt & local spid=$!
  local k; for k in $(seq 100); do grep -q PORT port.txt 2>/dev/null && break; sleep 0.05; done
  local port; port=$(awk '/PORT/ {print $2}' port.txt)
  GRAFT_OFFLINE=0 GRAFT_FETCH_BASE_URL=http://127.0.0.1:$port/ok g fetch tiny-darknet
  GRAFT_OFFLINE=0 GRAFT_FETCH_BASE_URL=http://127.0.0.1:$port/drop g fetch --force --json tiny-darknet
  GRAFT_OFFLINE=0 GRAFT_FETCH_BASE_URL=http://127.0.0.1:$port/missing g fetch --force -q tiny-darknet
  kill $spid; wait $spid 2>/dev/null
  sort srv.log >requests.txt; rm -rf www srv.log port.txt
  (cd "$GRAFT_HOME" && find . -type f | sort) >home.txt
}
# a terminal: the progress lines (util-linux script gives the command a tty)
c_tty() {
  command -v script >/dev/null || { echo "tty: no script(1)" >../skipped.txt; return 0; }
  script -qc "'$GRAFT' train --base 'darknet:$I/tiny.cfg' --weights none --head flatten,dense:10:softmax --data '$I/train.bin' --epochs 2 --batch 64 --out m.gft" /dev/null | tr '\r' '\n' >out.tty
}
c_report() {
  g "${TR[@]}" --test "$I/test.bin" --report rep --out m.gft
  rm -f rep/index.html
  g report rep
  g report
  g report rep rep
  g report --nosuch
  g report nosuch
}
c_top() {
  g
  g --help
  g --version
  g nosuch
  g help train
}

# ---------------------------------------------------------------- main
for f in $(declare -F | awk '{print $3}' | grep '^c_'); do case_run "${f#c_}"; done
echo
echo "cases: ${#CASES[@]}, differ: ${#DIFFER[@]}${DIFFER[*]:+ (${DIFFER[*]})}"
[ ${#SKIPPED[@]} -gt 0 ] && printf 'skipped: %s\n' "${SKIPPED[@]}"
[ ${#DIFFER[@]} -eq 0 ]
