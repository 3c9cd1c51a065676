#!/usr/bin/env bash
# test_cli_train.sh — `graft train` and `graft eval` end to end on tiny data
# made here (tests/fixtures/gen_cli.py: a CIFAR-10 .bin whose class k is a
# colour + a stripe + noise, and a 3-class PNG folder) with a tiny darknet
# base written here (conv+bn+leaky+maxpool x2, --weights none):
#   Keras-like epoch lines, Test loss/accuracy, --out, the --log CSV,
#   --val-split / --val, seed determinism (byte-identical model files, with
#   and without the features cache), --from, eval's text and --json output
#   checked for consistency in python, and bad inputs: each a "graft: error:"
#   line, a non-zero exit, no crash or sanitizer report, no clobbered --out.
set -u
. "$(dirname "$0")/lib.sh"

need_numpy_pil cli_train "to make the test data"
"$PY" "$GEN" cifar "$T/train.bin" 300 1 && "$PY" "$GEN" cifar "$T/test.bin" 100 2 \
  && "$PY" "$GEN" folder "$T/fold" 6 3 || { echo "FAIL cli_train_setup: gen_cli.py"; exit 1; }
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"   # conv+bn+leaky+maxpool x2
BASE=(--base "darknet:$T/tiny.cfg" --weights none)
HEAD=(--head flatten,dense:10:softmax)

# ---- train: epoch lines, test score, --out, --log
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --test "$T/test.bin" --epochs 3 \
  --out "$T/m.gft" --log "$T/log.csv" >"$T/out" 2>"$T/err"; rc=$?
cp "$T/err" "$T/err0"
if [ $rc -eq 0 ] && [ "$(grep -cE '^Epoch [1-3]/3 - 10/10 - [0-9.]+s - loss: [0-9]+\.[0-9]{4} - accuracy: [0-9]\.[0-9]{4} - lr: ' "$T/out")" -eq 3 ] \
   && has "$T/out" '^Test loss: [0-9]+\.[0-9]{4}$' && has "$T/out" '^Test accuracy: [0-9]\.[0-9]{4}$' \
   && has "$T/out" "^saved $T/m.gft" && [ -s "$T/m.gft" ] && ! [ -e "$T/m.gft.ckpt" ] \
   && [ -z "$(ls "$T" | grep -E 'tmp')" ]; then
  pass train_epochs_and_test_score
else fail train_epochs_and_test_score "rc=$rc $(cat "$T/out" "$T/err" | tail -20)"; fi
acc=$(sed -n 's/^Test accuracy: //p' "$T/out")
# a base whose weights file holds NaN (the first conv's kernel: floats 64..495 of
# tiny.cfg's 1464, after the 20-byte darknet header): refused before training
# (the fast path's ReLU can turn NaN features into zeros and train on nothing)
"$PY" -c "
import struct
v = [0.5] * 1464
for i in range(64, 496): v[i] = float('nan')
open('$T/nan.weights', 'wb').write(struct.pack('<iiiq', 0, 2, 0, 0) + struct.pack('<%df' % len(v), *v))"
"$G" train --base "darknet:$T/tiny.cfg" --weights "$T/nan.weights" "${HEAD[@]}" --data "$T/train.bin" --epochs 1 -q \
  --no-cache --out "$T/mnan.gft" >"$T/out" 2>"$T/err"; rc=$?
if clean_fail $rc "$T/err" "frozen weights '0/conv/kernel' hold NaN" && ! [ -e "$T/mnan.gft" ]; then
  pass train_nan_base_refused
else fail train_nan_base_refused "rc=$rc $(cat "$T/err")"; fi
# a base whose weights are all zero: every feature is the same for every image, so
# the head can only learn the class frequencies: a warning naming the cut, not a
# quiet run to chance accuracy (the run above, on a real pattern, has no such line)
"$PY" -c "
import struct
open('$T/zero.weights', 'wb').write(struct.pack('<iiiq', 0, 2, 0, 0) + struct.pack('<1464f', *([0.0] * 1464)))"
"$G" train --base "darknet:$T/tiny.cfg" --weights "$T/zero.weights" "${HEAD[@]}" --data "$T/train.bin" --epochs 1 -q \
  --no-cache --out "$T/mzero.gft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/err" "features at '.*' do not vary across the 300 training images" \
   && ! grep -q "do not vary" "$T/err0"; then pass train_constant_features_warned
else fail train_constant_features_warned "rc=$rc $(cat "$T/err")"; fi
# --input-size: the 32x32 CIFAR images are resized to 48x40 and the model takes 48x40
# (the saved model's input as graft info prints it)
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --input-size 48x40 --epochs 1 -q \
  --out "$T/m48.gft" >"$T/out" 2>"$T/err"; rc=$?
"$G" info "$T/m48.gft" >"$T/info" 2>&1
if [ $rc -eq 0 ] && has "$T/info" '^input: 48x40x3$'; then pass train_input_size_used
else fail train_input_size_used "rc=$rc $(cat "$T/err"; grep -i input "$T/info")"; fi
if "$PY" -c "import sys; sys.exit(0 if float('${acc:-0}') >= 0.6 else 1)"; then pass train_learns_pattern
else fail train_learns_pattern "test accuracy ${acc:-none} after 3 epochs (chance 0.1)"; fi

# the CSV: header, one row per epoch, epochs 1..3, no validation = nan, lr on the default
# cosine schedule: 0.01 * (1 + cos(pi * it / 30)) / 2 after 10, 20, 30 of 30 batches
if "$PY" - "$T/log.csv" <<'EOF'
import csv, math, sys
rows = list(csv.reader(open(sys.argv[1])))
assert rows[0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds".split(","), rows[0]
assert len(rows) == 4, len(rows)
r = [[float(v) for v in row] for row in rows[1:]]
assert [x[0] for x in r] == [1, 2, 3]
assert all(math.isfinite(x[1]) and 0 <= x[2] <= 1 and math.isnan(x[3]) and math.isnan(x[4]) for x in r)
assert r[2][1] < r[0][1], "loss did not fall"
assert [abs(x[5] - w) < 1e-9 for x, w in zip(r, [0.0075, 0.0025, 0.0])] == [True] * 3, [x[5] for x in r]
assert all(x[6] >= 0 for x in r)
EOF
then pass train_log_csv; else fail train_log_csv "$(cat "$T/log.csv")"; fi

# --no-standardize is the exact Keras recipe: Keras' inverse-time decay, lr / (1 + 1e-6 * it);
# so is an explicit --decay; the schedule is printed
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 1 --no-standardize \
  --out "$T/ns.gft" --log "$T/ns.csv" >"$T/out" 2>"$T/err"; rc=$?
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 1 --decay 1e-3 \
  --out "$T/dc.gft" --log "$T/dc.csv" >"$T/out2" 2>>"$T/err"; rc2=$?
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && has "$T/out" 'schedule inverse-time \(decay 1e-06 per batch\)' \
   && has "$T/out2" 'schedule inverse-time \(decay 0.001 per batch\)' && "$PY" - "$T/ns.csv" "$T/dc.csv" <<'EOF'
import csv, sys
for path, decay in zip(sys.argv[1:], [1e-6, 1e-3]):
    lr = float(list(csv.reader(open(path)))[1][5])
    assert abs(lr - 0.01 / (1 + decay * 10)) < 1e-9, (path, lr)
EOF
then pass train_keras_schedule; else fail train_keras_schedule "rc=$rc/$rc2 $(cat "$T/out" "$T/err" "$T/ns.csv" | tail -12)"; fi

# ---- --val-split: 20% of each class held out, val columns filled
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --val-split 0.2 --epochs 2 \
  --out "$T/v.gft" --log "$T/vlog.csv" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "on 240 samples" && has "$T/out" "features \(validation\): 60 images" \
   && [ "$(grep -cE '^Epoch [12]/2 .* - val_loss: [0-9.]+ - val_accuracy: [0-9.]+ - lr' "$T/out")" -eq 2 ] \
   && "$PY" -c "
import csv, math; r = list(csv.DictReader(open('$T/vlog.csv')))
assert len(r) == 2 and all(math.isfinite(float(x['val_loss'])) and 0 <= float(x['val_accuracy']) <= 1 for x in r)"; then
  pass train_val_split
else fail train_val_split "rc=$rc $(cat "$T/out" "$T/err" "$T/vlog.csv" | tail -12)"; fi
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --val "$T/test.bin" --epochs 1 -q \
  --out "$T/v2.gft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && [ -s "$T/v2.gft" ]; then pass train_val_path; else fail train_val_path "rc=$rc $(cat "$T/err")"; fi
vs_bad=""
for bad in 1 1.5 -0.2 x; do
  "$G" train "${BASE[@]}" --data "$T/train.bin" --val-split "$bad" --out "$T/bad.gft" >"$T/out" 2>"$T/err"; rc=$?
  clean_fail $rc "$T/err" || vs_bad="$vs_bad [$bad: rc=$rc $(cat "$T/err")]"
done
if [ -z "$vs_bad" ] && ! [ -e "$T/bad.gft" ]; then pass train_val_split_bad_values; else fail train_val_split_bad_values "$vs_bad"; fi

# ---- determinism: the same seed gives the same file (cached and not), another seed another
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 2 --seed 5 -q --out "$T/s5a.gft" 2>"$T/err" \
 && "$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 2 --seed 5 -q --out "$T/s5b.gft" 2>>"$T/err" \
 && "$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 2 --seed 5 -q --no-cache --out "$T/s5c.gft" 2>>"$T/err" \
 && "$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 2 --seed 6 -q --out "$T/s6.gft" 2>>"$T/err"; rc=$?
if [ $rc -eq 0 ] && cmp -s "$T/s5a.gft" "$T/s5b.gft" && cmp -s "$T/s5a.gft" "$T/s5c.gft" && ! cmp -s "$T/s5a.gft" "$T/s6.gft"; then
  pass train_seed_determinism
else fail train_seed_determinism "rc=$rc same: $(cmp "$T/s5a.gft" "$T/s5b.gft" 2>&1) no-cache: $(cmp "$T/s5a.gft" "$T/s5c.gft" 2>&1) $(cat "$T/err")"; fi

# augmentation (pad-crop + flip, cache off) is seed-determined too, and differs from no augmentation
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 2 --seed 5 --augment --out "$T/aug1.gft" >"$T/out" 2>"$T/err" \
 && "$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 2 --seed 5 --augment -q --out "$T/aug2.gft" 2>>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "features cache: off \(augmentation\)" && cmp -s "$T/aug1.gft" "$T/aug2.gft" \
   && ! cmp -s "$T/aug1.gft" "$T/s5a.gft"; then pass train_augment_deterministic
else fail train_augment_deterministic "rc=$rc $(cmp "$T/aug1.gft" "$T/aug2.gft" 2>&1) $(cat "$T/err")"; fi
# --lr auto: the range test picks a rate and the run trains with it; it needs the cache
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 1 --lr auto --out "$T/auto.gft" >"$T/out" 2>"$T/err"; rc=$?
# (on these standardized features the loss still falls at lr 10, the sweep's end: inconclusive, the default)
if [ $rc -eq 0 ] && { has "$T/out" "^lowest loss at lr [0-9.e+-]+: using lr [0-9.e+-]+$" \
     || has "$T/err" "^graft: warning: --lr auto: the range test is inconclusive .*: using the default lr 0.01$"; } \
   && [ -s "$T/auto.gft" ]; then pass train_lr_auto
else fail train_lr_auto "rc=$rc $(tail -5 "$T/out") $(cat "$T/err")"; fi
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 1 --lr auto --augment -q --out "$T/auto2.gft" >"$T/out" 2>"$T/err"; rc=$?
if clean_fail $rc "$T/err" && has "$T/err" "lr auto needs the features cache" && ! [ -e "$T/auto2.gft" ]; then pass train_lr_auto_needs_cache
else fail train_lr_auto_needs_cache "rc=$rc $(cat "$T/err")"; fi

# --lr auto then --resume: the checkpoint keeps the rate the range test picked (here 0.0666; a constant
# schedule, so that a 1-epoch run's checkpoint resumed for 2 epochs equals a 2-epoch run)
A=(--data "$T/train.bin" --lr auto --lr-schedule constant --no-standardize -q)
"$G" train "${BASE[@]}" "${HEAD[@]}" "${A[@]}" --epochs 2 --out "$T/a2.gft" 2>"$T/err" \
  && "$G" train "${BASE[@]}" "${HEAD[@]}" "${A[@]}" --epochs 1 --checkpoint "$T/a1.ckpt" --out "$T/a1.gft" 2>>"$T/err" \
  && "$G" train --resume "$T/a1.ckpt" "${A[@]}" --epochs 2 --out "$T/a1r.gft" 2>>"$T/err"; rc=$?
if [ $rc -eq 0 ] && cmp -s "$T/a2.gft" "$T/a1r.gft" && ! cmp -s "$T/a1.gft" "$T/a1r.gft"; then pass train_lr_auto_resume
else fail train_lr_auto_resume "rc=$rc $(cmp "$T/a2.gft" "$T/a1r.gft" 2>&1) $(cat "$T/err")"; fi
# --resume CKPT alone takes every setting from the checkpoint (data, head, schedule, --out) and may
# extend the run (Keras' initial_epoch; the cosine schedule then spans the new total); an explicit
# --checkpoint is kept
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" -q --epochs 1 --checkpoint "$T/c1.ckpt" --out "$T/c1.gft" 2>"$T/err" \
  && cp "$T/c1.gft" "$T/c1.first" \
  && "$G" train --resume "$T/c1.ckpt" --epochs 2 >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "^--epochs 2: the run goes on from epoch 1 \(the cosine schedule now spans the new total\)" \
   && has "$T/out" "^Epoch 2/2 " && ! has "$T/out" "^Epoch 1/" && ! cmp -s "$T/c1.gft" "$T/c1.first" && [ -s "$T/c1.ckpt" ] \
   && ! [ -e model.gft ]; then
  pass train_resume_extends_epochs
else fail train_resume_extends_epochs "rc=$rc $(cat "$T/out" "$T/err")"; fi
"$G" train --resume "$T/c1.ckpt" --epochs 1 -q >"$T/out" 2>"$T/err"; rc=$?   # fewer than done: refused
if [ $rc -eq 2 ] && has "$T/err" "^graft: error: --epochs 1: .*c1.ckpt has already trained 2 epochs"; then
  pass train_resume_fewer_epochs
else fail train_resume_fewer_epochs "rc=$rc $(cat "$T/err")"; fi
# the model comes from the checkpoint (or --from): options that would change it are usage errors
bad=""
for opt in "--cut 3" "--head gap,dense:10:softmax" "--input-size 64x64" "--crop"; do
  "$G" train --resume "$T/c1.ckpt" $opt -q >"$T/out" 2>"$T/err"; rc=$?
  [ $rc -eq 2 ] && has "$T/err" "^graft: error: .*(--resume|checkpoint)" || bad="$bad [$opt: rc=$rc $(cat "$T/err")]"
done
"$G" train --from "$T/c1.gft" --data "$T/train.bin" --cut 3 -q >"$T/out" 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && has "$T/err" "^graft: error: --cut: the model comes from --from" || bad="$bad [--from --cut: rc=$rc $(cat "$T/err")]"
if [ -z "$bad" ]; then pass train_resume_refuses_model_options
else fail train_resume_refuses_model_options "$bad"; fi
# a setting given again that differs from the checkpoint's: named, values printed plainly
"$G" train --resume "$T/c1.ckpt" --epochs 3 --lr 0.02 -q >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 1 ] && has "$T/err" "the checkpoint was made with lr = 0\.01, this run has 0\.02$"; then
  pass train_resume_mismatch_plain
else fail train_resume_mismatch_plain "rc=$rc $(cat "$T/err")"; fi
# an --lr auto checkpoint resumed with an explicit --lr: refused, never trained on at the rate the range
# test picked (before the option tables --lr 0.05 was taken and silently ignored: the run went on at 0.01)
cp "$T/a1.ckpt" "$T/a1b.ckpt"
"$G" train --resume "$T/a1b.ckpt" --epochs 3 --lr 0.05 -q --out "$T/a1b.gft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 1 ] && has "$T/err" "^graft: error: .*the checkpoint was made with lr = auto, this run has 0\.05$" \
   && ! [ -e "$T/a1b.gft" ] && cmp -s "$T/a1.ckpt" "$T/a1b.ckpt"; then
  pass train_resume_lr_auto_mismatch
else fail train_resume_lr_auto_mismatch "rc=$rc $(cat "$T/err")"; fi

# ---- --from: continue training a model file
"$G" train --from "$T/m.gft" --data "$T/train.bin" --epochs 1 -q --out "$T/m2.gft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && [ -s "$T/m2.gft" ] && ! cmp -s "$T/m.gft" "$T/m2.gft"; then pass train_from_model
else fail train_from_model "rc=$rc $(cat "$T/err")"; fi

# ---- SIGINT: a checkpoint, exit 130, no --out; --resume finishes bit-identical to an uninterrupted run
R=(--data "$T/train.bin" --epochs 40 --no-cache -q)
"$G" train "${BASE[@]}" "${HEAD[@]}" "${R[@]}" --out "$T/full.gft" --log "$T/full.csv" 2>"$T/err" || fail train_full_run "$(cat "$T/err")"
"$G" train "${BASE[@]}" "${HEAD[@]}" "${R[@]}" --out "$T/int.gft" --log "$T/int.csv" 2>"$T/err" &
pid=$!
stop_when -t 1 $pid lines_at_least "$T/int.csv" 3   # two epochs logged: stopped there
kill -INT $pid 2>/dev/null; kill -CONT $pid 2>/dev/null; wait $pid; rc=$?
if [ $rc -eq 0 ]; then
  echo "SKIP train_interrupt_resume: the run finished before SIGINT arrived"
elif [ $rc -eq 130 ] && has "$T/err" "^graft: interrupted in epoch [0-9]+ after batch [0-9]+/10; checkpoint written to $T/int.gft.ckpt" \
     && [ -s "$T/int.gft.ckpt" ] && ! [ -e "$T/int.gft" ] && ! has "$T/err" "Sanitizer|runtime error"; then
  # the hint works as printed: the checkpoint holds every setting (--out, --log, ...); the
  # checkpoint it finished is removed
  hint=$(sed -n 's/^graft: continue with: graft //p' "$T/err")
  [ "$hint" = "train --resume $T/int.gft.ckpt" ] || fail train_interrupt_resume_hint "$(cat "$T/err")"
  "$G" $hint >"$T/out" 2>"$T/err"; rc=$?
  # the log too: every epoch's loss and accuracy as uninterrupted (the resumed epoch's included)
  if [ $rc -eq 0 ] && cmp -s "$T/int.gft" "$T/full.gft" && [ "$(tail -1 "$T/int.csv" | cut -d, -f1)" = 40 ] \
     && ! [ -e "$T/int.gft.ckpt" ] \
     && [ "$(cut -d, -f1-5 "$T/int.csv")" = "$(cut -d, -f1-5 "$T/full.csv")" ]; then
    pass train_interrupt_resume
  else fail train_interrupt_resume "resume rc=$rc $(cmp "$T/int.gft" "$T/full.gft" 2>&1) $(diff <(cut -d, -f1-5 "$T/int.csv") <(cut -d, -f1-5 "$T/full.csv")) $(cat "$T/err")"; fi
else fail train_interrupt_resume "rc=$rc $(cat "$T/err")"; fi

# the same when the signal lands after an epoch's last batch (one batch per epoch; --no-cache
# could not resume such a checkpoint: "no samples to iterate over"; the cache logged a nan epoch)
R=(--data "$T/train.bin" --epochs 150 --batch 300 --no-cache -q)
"$G" train "${BASE[@]}" "${HEAD[@]}" "${R[@]}" --out "$T/full1.gft" --log "$T/full1.csv" 2>"$T/err" || fail train_full_run1 "$(cat "$T/err")"
"$G" train "${BASE[@]}" "${HEAD[@]}" "${R[@]}" --out "$T/int1.gft" --log "$T/int1.csv" 2>"$T/err" &
pid=$!
stop_when -t 1 $pid lines_at_least "$T/int1.csv" 3   # two epochs logged: stopped there
kill -INT $pid 2>/dev/null; kill -CONT $pid 2>/dev/null; wait $pid; rc=$?
if [ $rc -eq 0 ]; then
  echo "SKIP train_interrupt_resume_epoch_end: the run finished before SIGINT arrived"
elif [ $rc -eq 130 ] && has "$T/err" "after batch 1/1; checkpoint written to"; then
  "$G" train --resume "$T/int1.gft.ckpt" "${R[@]}" --out "$T/int1.gft" --log "$T/int1.csv" >"$T/out" 2>"$T/err"; rc=$?
  # the interrupted epoch is closed on resume: its log row as uninterrupted, none lost
  if [ $rc -eq 0 ] && cmp -s "$T/int1.gft" "$T/full1.gft" && ! grep -q nan,nan,nan "$T/int1.csv" \
     && [ "$(cut -d, -f1-5 "$T/int1.csv")" = "$(cut -d, -f1-5 "$T/full1.csv")" ]; then
    pass train_interrupt_resume_epoch_end
  else fail train_interrupt_resume_epoch_end "resume rc=$rc $(cmp "$T/int1.gft" "$T/full1.gft" 2>&1) $(cat "$T/err")"; fi
else fail train_interrupt_resume_epoch_end "rc=$rc $(cat "$T/err")"; fi

# ---- eval: text and JSON, consistent with each other and with train's test score
"$G" eval --model "$T/m.gft" --data "$T/test.bin" >"$T/eval.txt" 2>"$T/err"; rc=$?
"$G" eval --model "$T/m.gft" --data "$T/test.bin" --json >"$T/eval.json" 2>>"$T/err"; rc2=$?
if [ $rc -eq 0 ] && has "$T/eval.txt" "^Test loss: " && has "$T/eval.txt" "^Test accuracy: $acc\$" \
   && has "$T/eval.txt" "^Top-5 accuracy: " && has "$T/eval.txt" "^class +images +accuracy" \
   && [ "$(grep -cE '^(airplane|automobile|bird|cat|deer|dog|frog|horse|ship|truck) +10 +[01]\.[0-9]{4}$' "$T/eval.txt")" -eq 10 ] \
   && has "$T/eval.txt" "^confusion matrix \(rows: true class, columns: predicted\)"; then
  pass eval_text
else fail eval_text "rc=$rc $(cat "$T/eval.txt" "$T/err")"; fi
if [ $rc2 -eq 0 ] && "$PY" - "$T/eval.json" "$T/eval.txt" <<'EOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
for k in ("loss", "accuracy", "top5", "classes", "per_class_accuracy", "confusion"):
    assert k in d, k
C, cm = len(d["classes"]), d["confusion"]
assert C == 10 and d["classes"][0] == "airplane" and len(cm) == C and all(len(r) == C for r in cm)
n = sum(map(sum, cm))
assert n == 100 == d.get("n", n), n
assert abs(d["accuracy"] - sum(cm[k][k] for k in range(C)) / n) < 1e-6
assert all(abs(d["per_class_accuracy"][k] - cm[k][k] / sum(cm[k])) < 1e-6 for k in range(C))
assert d["accuracy"] <= d["top5"] <= 1 and d["loss"] > 0
txt = open(sys.argv[2]).read()
assert abs(float(re.search(r"^Test loss: (\S+)", txt, re.M).group(1)) - d["loss"]) < 6e-5
assert abs(float(re.search(r"^Top-5 accuracy: (\S+)", txt, re.M).group(1)) - d["top5"]) < 6e-5
EOF
then pass eval_json
else fail eval_json "rc=$rc2 $(head -c 600 "$T/eval.json") $(cat "$T/err")"; fi

# ---- bad inputs
try() {  # $1 = name, rest = graft arguments; expects a clean failure
  local name=$1; shift
  "$G" "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if clean_fail $rc "$T/err"; then pass "$name"; else fail "$name" "rc=$rc $(head -c 800 "$T/err")"; fi
}
D=(--data "$T/train.bin" --epochs 1 -q)
try train_bad_head_units train "${BASE[@]}" "${D[@]}" --head dense:abc --out "$T/x.gft"
grep -q "dense units 'abc'" "$T/err" || fail train_bad_head_units_msg "$(cat "$T/err")"
try train_bad_head_layer train "${BASE[@]}" "${D[@]}" --head flaten --out "$T/x.gft"
grep -q "'flaten'" "$T/err" || fail train_bad_head_layer_msg "$(cat "$T/err")"
try train_bad_head_activation train "${BASE[@]}" "${D[@]}" --head flatten,dense:10:softmaxx --out "$T/x.gft"
try train_head_wrong_classes train "${BASE[@]}" "${D[@]}" --head flatten,dense:7:softmax --out "$T/x.gft"
grep -q "7 outputs.*10 classes" "$T/err" || fail train_head_wrong_classes_msg "$(cat "$T/err")"
try train_unknown_cut train "${BASE[@]}" "${D[@]}" --cut nope --out "$T/x.gft"
grep -q "no layer 'nope'" "$T/err" || fail train_unknown_cut_msg "$(cat "$T/err")"
try train_from_other_classes train --from "$T/m.gft" --data "$T/fold" --epochs 1 -q --out "$T/x.gft"
grep -q "10 output classes.*3" "$T/err" || fail train_from_other_classes_msg "$(cat "$T/err")"
try train_val_more_classes train "${BASE[@]}" --data "$T/fold" --input-size 32x32 --head flatten,dense:3:softmax \
  --val "$T/test.bin" --epochs 1 -q --out "$T/x.gft"
try train_test_more_classes train "${BASE[@]}" --data "$T/fold" --input-size 32x32 --head flatten,dense:3:softmax \
  --test "$T/test.bin" --epochs 1 -q --out "$T/x.gft"
# a head whose output is not a vector: tiny.cfg + a 1x1 conv to 10 channels, cut there, head batchnorm
{ cat "$T/tiny.cfg"; printf '\n[convolutional]\nfilters=10\nsize=1\nstride=1\npad=1\nactivation=linear\n'; } >"$T/c10.cfg"
try train_spatial_head train --base "darknet:$T/c10.cfg" --weights none "${D[@]}" --cut 4 --head batchnorm --out "$T/x.gft"
grep -q "outputs 8x8x10, not a vector" "$T/err" || fail train_spatial_head_msg "$(cat "$T/err")"
[ -e "$T/x.gft" ] && fail train_bad_inputs_no_output "a failed run wrote $T/x.gft"
try train_out_in_missing_dir train "${BASE[@]}" "${HEAD[@]}" "${D[@]}" --out "$T/nodir/m.gft"
grep -q "$T/nodir/m.gft" "$T/err" || fail train_out_in_missing_dir_msg "$(cat "$T/err")"
# a good model at --out survives a run that fails part-way (here: the log cannot be written)
cp "$T/m.gft" "$T/keep.gft" && cp "$T/m.gft" "$T/keep.orig"
try train_failure_keeps_out train "${BASE[@]}" "${HEAD[@]}" "${D[@]}" --out "$T/keep.gft" --log "$T/nodir/log.csv"
if cmp -s "$T/keep.gft" "$T/keep.orig" && [ -z "$(ls "$T" | grep -E '^keep\.gft\.')" ]; then pass train_failure_leaves_out_intact
else fail train_failure_leaves_out_intact "$(ls "$T")"; fi
try train_missing_data train "${BASE[@]}" --epochs 1 --out "$T/x.gft"
try train_data_not_found train "${BASE[@]}" --data "$T/nothere.bin" --epochs 1 --out "$T/x.gft"
try train_negative_lr train "${BASE[@]}" "${D[@]}" --lr -1 --out "$T/x.gft"
try train_zero_epochs train "${BASE[@]}" --data "$T/train.bin" --epochs 0 --out "$T/x.gft"
try train_unknown_option train "${BASE[@]}" "${D[@]}" --epoch 3 --out "$T/x.gft"
try train_unknown_base train --base vgg17 --weights none "${D[@]}" --out "$T/x.gft"
try train_missing_cfg train --base "darknet:$T/none.cfg" --weights none "${D[@]}" --out "$T/x.gft"
[ -e "$T/x.gft" ] && fail train_bad_inputs_no_output "a failed run wrote $T/x.gft"

head -c 3000 "$T/m.gft" >"$T/trunc.gft"
try eval_truncated_model eval --model "$T/trunc.gft" --data "$T/test.bin"
grep -q "$T/trunc.gft" "$T/err" || fail eval_truncated_model_msg "$(cat "$T/err")"
"$PY" -c "
import json, struct
h = json.dumps({'w': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}}).encode()
open('$T/plain.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + struct.pack('<2f', 1, 2))"
try eval_not_a_model eval --model "$T/plain.safetensors" --data "$T/test.bin"
grep -q "$T/plain.safetensors: not a graft model" "$T/err" || fail eval_not_a_model_msg "$(cat "$T/err")"
try eval_missing_model eval --model "$T/none.gft" --data "$T/test.bin"
try eval_missing_data eval --model "$T/m.gft"
"$G" train "${BASE[@]}" --data "$T/fold" --input-size 32x32 --head flatten,dense:3:softmax --epochs 1 -q \
  --out "$T/f3.gft" 2>"$T/err" || fail train_folder "$(cat "$T/err")"
try eval_more_classes_than_outputs eval --model "$T/f3.gft" --data "$T/test.bin"
grep -q "10 classes but the model has 3 outputs" "$T/err" || fail eval_more_classes_msg "$(cat "$T/err")"
# a folder with a subset of the model's classes: 'red' is data class 1 but model class 2
mkdir -p "$T/fold2" && cp -r "$T/fold/blue" "$T/fold/red" "$T/fold2/"
try eval_classes_other_order eval --model "$T/f3.gft" --data "$T/fold2"
grep -q "class 1 is 'red', but in $T/f3.gft 'red' is class 2" "$T/err" || fail eval_classes_other_order_msg "$(cat "$T/err")"
# the same check in train: --from with the classes in another order, --val with a subset
mkdir -p "$T/fold3" && cp -r "$T/fold/blue" "$T/fold/green" "$T/fold3/" && cp -r "$T/fold/red" "$T/fold3/aaa"
try train_from_classes_other_order train --from "$T/f3.gft" --data "$T/fold3" --epochs 1 -q --out "$T/x.gft"
grep -q "class 1 is 'blue', but in $T/f3.gft 'blue' is class 0" "$T/err" || fail train_from_classes_other_order_msg "$(cat "$T/err")"
try train_val_classes_other_order train "${BASE[@]}" --data "$T/fold" --input-size 32x32 --head flatten,dense:3:softmax \
  --val "$T/fold2" --epochs 1 -q --out "$T/x.gft"
[ -e "$T/x.gft" ] && fail train_bad_inputs_no_output "a failed run wrote $T/x.gft"
try eval_bad_split eval --model "$T/m.gft" --data "$T/test.bin" --split validation

# ---- issue 19's levers: --random-resized-crop, --mixup, --cutmix, --ema, --tta flip
# a run with every lever, resumed: a 1-epoch checkpoint (the moving average in it) resumed to 2
# epochs gives the 2-epoch run's model byte for byte (constant schedule); eval --tta flip on its test
# set gives what train's --test printed under --tta flip
L=(--data "$T/train.bin" --test "$T/test.bin" --augment --random-resized-crop 0.5 --mixup 0.2 --cutmix 1 --ema 0.9
   --tta flip --lr-schedule constant -q)
"$G" train "${BASE[@]}" "${HEAD[@]}" "${L[@]}" --epochs 2 --out "$T/l2.gft" >"$T/l2.out" 2>"$T/err" \
  && "$G" train "${BASE[@]}" "${HEAD[@]}" "${L[@]}" --epochs 1 --checkpoint "$T/l1.ckpt" --out "$T/l1.gft" >/dev/null 2>>"$T/err" \
  && "$G" train --resume "$T/l1.ckpt" --epochs 2 -q --out "$T/l1r.gft" >/dev/null 2>>"$T/err"; rc=$?
if [ $rc -eq 0 ] && cmp -s "$T/l2.gft" "$T/l1r.gft" && ! cmp -s "$T/l1.gft" "$T/l1r.gft"; then pass train_levers_resume
else fail train_levers_resume "rc=$rc $(cmp "$T/l2.gft" "$T/l1r.gft" 2>&1) $(cat "$T/err")"; fi
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --test "$T/test.bin" --augment --random-resized-crop 0.5 \
  --mixup 0.2 --cutmix 1 --ema 0.9 --tta flip --lr-schedule constant --epochs 2 --out "$T/l2b.gft" >"$T/l2b.out" 2>"$T/err"
"$G" eval --model "$T/l2b.gft" --data "$T/test.bin" --tta flip -q >"$T/ev" 2>>"$T/err"; rc=$?
"$G" eval --model "$T/l2b.gft" --data "$T/test.bin" -q >"$T/ev0" 2>>"$T/err"
ta=$(sed -n 's/^Test accuracy: //p' "$T/l2b.out"); tl=$(sed -n 's/^Test loss: //p' "$T/l2b.out")
if [ $rc -eq 0 ] && [ -n "$ta" ] && has "$T/ev" "^Test accuracy: $ta\$" && has "$T/ev" "^Test loss: $tl\$" \
   && ! cmp -s "$T/ev" "$T/ev0"; then pass eval_tta_flip_matches_train
else fail eval_tta_flip_matches_train "rc=$rc train: $ta $tl; eval: $(cat "$T/ev" "$T/ev0" "$T/err")"; fi
# the levers' settings are in the checkpoint: resuming with another value is refused
"$G" train --resume "$T/l1.ckpt" --ema 0.5 --epochs 3 -q >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -ne 0 ] && has "$T/err" "checkpoint was made with ema = 0.9, this run has 0.5"; then pass train_levers_resume_mismatch
else fail train_levers_resume_mismatch "rc=$rc $(cat "$T/err")"; fi
# the cached prefix: --flip keeps the cache (said), --augment --cache-prefix too; each resumed from a
# 1-epoch checkpoint gives the 2-epoch run's model byte for byte; --cache-prefix alone is refused
bad=""
for opt in "--flip" "--augment --cache-prefix"; do
  # shellcheck disable=SC2086
  P=(--data "$T/train.bin" $opt --lr-schedule constant)
  "$G" train "${BASE[@]}" "${HEAD[@]}" "${P[@]}" --epochs 2 --out "$T/p2.gft" >"$T/p2.out" 2>"$T/err" \
    && "$G" train "${BASE[@]}" "${HEAD[@]}" "${P[@]}" -q --epochs 1 --checkpoint "$T/p1.ckpt" --out "$T/p1.gft" >/dev/null 2>>"$T/err" \
    && "$G" train --resume "$T/p1.ckpt" --epochs 2 -q --out "$T/p1r.gft" >/dev/null 2>>"$T/err"; rc=$?
  { [ $rc -eq 0 ] && has "$T/p2.out" "^cached prefix: .* and their mirrors" && cmp -s "$T/p2.gft" "$T/p1r.gft"; } ||
    bad="$bad [$opt: rc=$rc $(cmp "$T/p2.gft" "$T/p1r.gft" 2>&1) $(cat "$T/err")]"
  rm -f "$T/p1.ckpt" "$T/p1.gft" "$T/p1r.gft" "$T/p2.gft"
done
"$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 1 -q --cache-prefix --out "$T/x.gft" >"$T/out" 2>"$T/err"; rc=$?
{ [ $rc -eq 2 ] && has "$T/err" "^graft: error: --cache-prefix .*--augment" && ! [ -e "$T/x.gft" ]; } ||
  bad="$bad [--cache-prefix alone: rc=$rc $(cat "$T/err")]"
if [ -z "$bad" ]; then pass train_cached_prefix; else fail train_cached_prefix "$bad"; fi
# bad values: usage errors (exit 2) naming the option
bad=""
for args in "--ema 1" "--ema -0.1" "--ema x" "--mixup -1" "--cutmix -0.5" "--random-resized-crop 1.5" \
            "--random-resized-crop -1" "--tta mirror" "--lr auto --mixup 0.2"; do
  # shellcheck disable=SC2086
  "$G" train "${BASE[@]}" "${HEAD[@]}" --data "$T/train.bin" --epochs 1 -q --out "$T/x.gft" $args >"$T/out" 2>"$T/err"; rc=$?
  opt=${args%% *}; [ "$args" = "--lr auto --mixup 0.2" ] && opt=--mixup
  { [ $rc -eq 2 ] && has "$T/err" "^graft: error: .*\\$opt" && ! [ -e "$T/x.gft" ]; } || bad="$bad [$args: rc=$rc $(cat "$T/err")]"
done
"$G" eval --model "$T/m.gft" --data "$T/test.bin" --tta mirror >"$T/out" 2>"$T/err"; rc=$?
{ [ $rc -eq 2 ] && has "$T/err" "^graft: error: .*--tta"; } || bad="$bad [eval --tta mirror: rc=$rc $(cat "$T/err")]"
if [ -z "$bad" ]; then pass train_levers_bad_values; else fail train_levers_bad_values "$bad"; fi
