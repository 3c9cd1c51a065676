#!/usr/bin/env bash
# test_cli_files.sh — the files graft writes and reads (README "Files graft
# writes"), end to end with the graft command on tiny data made here:
#   outputs that are not regular files (a null device node, a fifo, a directory) are
#   refused and left as they were; an output that is an input of the run
#   (--data, --weights, the base's cfg, also through a symlink) is refused
#   and the input kept byte for byte; a symlinked --out is written through
#   (the link stays, its target gets the model); two outputs that are one
#   file are refused; a second run writing the same --out is refused naming
#   the first run's pid; ^C during the features pass stops the run before
#   the pass ends (exit 130, no temp or lock file left), a second ^C exits at
#   once; an interrupted training prints a --resume command that works as
#   printed; `graft extract` writes labels/paths/classes beside the features
#   (read back with numpy); `graft predict DIR` classifies the images under it.
set -u
. "$(dirname "$0")/lib.sh"
export GRAFT_HOME="$T/home"

usage_fail() {  # $1 = rc, $2 = stderr: exit 2, one "graft: error:" line
  [ "$1" -eq 2 ] && has "$2" "^graft: error: " && clean "$2"
}
sum() { md5sum "$1" | cut -d' ' -f1; }
leftovers() { find "$T" -name '*.tmp.*' -o -name '*.lock'; }

need_numpy_pil cli_files "to make the test data"
"$PY" "$GEN" cifar "$T/train.bin" 100 1 && "$PY" "$GEN" folder "$T/fold" 4 3 \
  || { echo "FAIL cli_files_setup: gen_cli.py"; exit 1; }
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"
# a slower base for the runs that must still be in their features pass when signalled
{ printf '[net]\nheight=32\nwidth=32\nchannels=3\n'
  for _ in 1 2 3; do printf '\n[convolutional]\nfilters=64\nsize=3\nstride=1\npad=1\nactivation=leaky\n'; done
  printf '\n[maxpool]\nsize=4\nstride=4\n'; } >"$T/slow.cfg"
"$PY" "$GEN" cifar "$T/slow.bin" 400 2 || { echo "FAIL cli_files_setup: slow data"; exit 1; }
TRAIN=(train --base "darknet:$T/tiny.cfg" --weights none --head flatten,dense:10:softmax --epochs 1 --quiet)

# ---- targets that are not regular files: refused, left as they were
# a character device: a private null device node (a graft that replaced the
# target would then replace this node, never the system's /dev/null)
if mknod "$T/null" c 1 3 2>/dev/null; then
  "$G" "${TRAIN[@]}" --data "$T/train.bin" --out "$T/null" >"$T/o" 2>"$T/e"; rc=$?
  if usage_fail $rc "$T/e" && has "$T/e" "$T/null is a character device" && [ -c "$T/null" ]; then
    pass out_char_device_refused
  else fail out_char_device_refused "rc=$rc $(cat "$T/e"); $(ls -l "$T/null")"; fi
  ln -s null "$T/null-link"   # through a symlink too
  "$G" extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --layer 3 --out "$T/null-link" \
    >"$T/o" 2>"$T/e"; rc=$?
  if usage_fail $rc "$T/e" && has "$T/e" "is a character device" && [ -c "$T/null" ]; then
    pass extract_out_symlink_to_char_device_refused
  else fail extract_out_symlink_to_char_device_refused "rc=$rc $(cat "$T/e"); $(ls -l "$T/null")"; fi
else
  echo "SKIP out_char_device_refused: mknod needs root"
fi
mkfifo "$T/fifo"
timeout -s KILL 60 "$G" "${TRAIN[@]}" --data "$T/train.bin" --out "$T/m.gft" --log "$T/fifo" >"$T/o" 2>"$T/e"; rc=$?
if usage_fail $rc "$T/e" && has "$T/e" "is a fifo" && [ -p "$T/fifo" ] && ! [ -e "$T/m.gft" ]; then
  pass log_fifo_refused
else fail log_fifo_refused "rc=$rc $(cat "$T/e")"; fi
mkdir "$T/adir"
"$G" extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --layer 3 --out "$T/adir" \
  >"$T/o" 2>"$T/e"; rc=$?
if usage_fail $rc "$T/e" && has "$T/e" "is a directory" && [ -d "$T/adir" ]; then pass extract_out_directory_refused
else fail extract_out_directory_refused "rc=$rc $(cat "$T/e")"; fi

# ---- an output that is an input of the run: refused before any work, the input kept
printf 'path,label\nfold/red/00.png,red\nfold/red/01.png,red\nfold/green/00.png,green\nfold/green/01.png,green\n' >"$T/list.csv"
s0=$(sum "$T/list.csv")
"$G" "${TRAIN[@]}" --head flatten,dense:2:softmax --data "$T/list.csv" --input-size 32x32 --out "$T/list.csv" >"$T/o" 2>"$T/e"; rc=$?
if usage_fail $rc "$T/e" && has "$T/e" "--data $T/list.csv" && [ "$(sum "$T/list.csv")" = "$s0" ]; then
  pass out_is_data_csv_refused
else fail out_is_data_csv_refused "rc=$rc $(cat "$T/e")"; fi
# darknet weights that fit tiny.cfg (header, then per conv: biases, bn scales, means, variances, kernels)
"$PY" - "$T/w.weights" <<'EOF'
import sys, numpy as np
rng = np.random.default_rng(4)
parts = [np.array([0, 2, 0], np.int32).tobytes(), np.zeros(1, np.int64).tobytes()]
for cin, cout in ((3, 8), (8, 16)):
    for v in (rng.normal(0, .1, cout), 1 + rng.normal(0, .1, cout), rng.normal(0, .1, cout),
              1 + rng.random(cout), rng.normal(0, .2, cout * cin * 9)):
        parts.append(v.astype(np.float32).tobytes())
open(sys.argv[1], "wb").write(b"".join(parts))
EOF
s0=$(sum "$T/w.weights")
ln -s w.weights "$T/w-link"
"$G" "${TRAIN[@]}" --weights "$T/w.weights" --data "$T/train.bin" --out "$T/w-link" \
  >"$T/o" 2>"$T/e"; rc=$?
if usage_fail $rc "$T/e" && has "$T/e" "--weights" && [ "$(sum "$T/w.weights")" = "$s0" ] && [ -L "$T/w-link" ]; then
  pass out_symlink_to_weights_refused
else fail out_symlink_to_weights_refused "rc=$rc $(cat "$T/e")"; fi
s0=$(sum "$T/tiny.cfg")
"$G" "${TRAIN[@]}" --data "$T/train.bin" --out "$T/m.gft" --log "$T/tiny.cfg" >"$T/o" 2>"$T/e"; rc=$?
if usage_fail $rc "$T/e" && [ "$(sum "$T/tiny.cfg")" = "$s0" ]; then pass log_is_base_cfg_refused
else fail log_is_base_cfg_refused "rc=$rc $(cat "$T/e")"; fi
s0=$(sum "$T/train.bin")
"$G" extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --layer 3 --out "$T/train.bin" \
  >"$T/o" 2>"$T/e"; rc=$?
if usage_fail $rc "$T/e" && [ "$(sum "$T/train.bin")" = "$s0" ]; then pass extract_out_is_data_refused
else fail extract_out_is_data_refused "rc=$rc $(cat "$T/e")"; fi
"$G" "${TRAIN[@]}" --data "$T/train.bin" --out "$T/m.gft" --checkpoint "$T/./m.gft" >"$T/o" 2>"$T/e"; rc=$?
if usage_fail $rc "$T/e" && has "$T/e" "same file"; then pass two_outputs_one_file_refused
else fail two_outputs_one_file_refused "rc=$rc $(cat "$T/e")"; fi

# ---- a symlinked --out is written through: the link stays, its target is the model
mkdir "$T/models"
ln -s models/real.gft "$T/link.gft"   # dangling: the target is created
"$G" "${TRAIN[@]}" --data "$T/train.bin" --out "$T/link.gft" >"$T/o" 2>"$T/e"; rc1=$?
s1=$(sum "$T/models/real.gft" 2>/dev/null)
"$G" "${TRAIN[@]}" --data "$T/train.bin" --seed 2 --out "$T/link.gft" >"$T/o" 2>"$T/e"; rc2=$?
if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ -L "$T/link.gft" ] && [ "$(readlink "$T/link.gft")" = models/real.gft ] \
   && [ -f "$T/models/real.gft" ] && [ "$(sum "$T/models/real.gft")" != "$s1" ] \
   && "$G" info "$T/link.gft" >/dev/null 2>&1 && [ -z "$(leftovers)" ]; then
  pass out_symlink_written_through
else fail out_symlink_written_through "rc=$rc1/$rc2 $(ls -l "$T" "$T/models"; cat "$T/e")"; fi

# ---- the lock: a second run on the same --out is refused naming the first's pid;
# ^C during the first run's features pass stops it before the pass ends
SLOW=(train --base "darknet:$T/slow.cfg" --weights none --head flatten,dense:10:softmax --epochs 1
      --data "$T/slow.bin" --batch 20)
GRAFT_FEATURES_CACHE=0 "$G" "${SLOW[@]}" --out "$T/s.gft" >"$T/o1" 2>"$T/e1" & p1=$!; PIDS+=("$p1")
if wait_for "$T/o1" "^features \(train\): running the frozen base on 400 images"; then
  "$G" "${TRAIN[@]}" --data "$T/train.bin" --out "$T/s.gft" >"$T/o2" 2>"$T/e2"; rc2=$?
  if [ $rc2 -eq 1 ] && has "$T/e2" "^graft: error: --out $T/s.gft is the output of another graft run .*pid $p1[;)]" \
     && clean "$T/e2"; then pass second_run_same_out_refused
  else fail second_run_same_out_refused "rc=$rc2 $(cat "$T/e2")"; fi
  kill -INT "$p1"; wait "$p1"; rc=$?
  done_n=$(sed -n 's/.*interrupted during the features (train) pass (\([0-9]*\) of 400 images done).*/\1/p' "$T/e1")
  if [ $rc -eq 130 ] && [ -n "$done_n" ] && [ "$done_n" -lt 400 ] && ! has "$T/o1" "^features \(train\): 400 images in" \
     && has "$T/e1" "no checkpoint yet" && ! [ -e "$T/s.gft" ] && [ -z "$(leftovers)" ] && clean "$T/e1"; then
    pass sigint_in_features_pass_stops
  else fail sigint_in_features_pass_stops "rc=$rc done=$done_n $(cat "$T/e1"; leftovers)"; fi
else
  fail second_run_same_out_refused "the first run never started its features pass: $(cat "$T/o1" "$T/e1")"
  kill -KILL "$p1" 2>/dev/null; wait "$p1" 2>/dev/null
fi

# a second ^C exits at once: the whole pass is one batch, so the first ^C
# cannot be acted on before the second arrives
# (o1/e1 removed first: wait_for must see this run's lines, not the last run's, or the
# signal may land before graft's exec; the same for the run after)
rm -f "$T/o1" "$T/e1"
GRAFT_FEATURES_CACHE=0 "$G" "${SLOW[@]}" --batch 400 --out "$T/s.gft" >"$T/o1" 2>"$T/e1" & p1=$!; PIDS+=("$p1")
if wait_for "$T/o1" "^features \(train\): running the frozen base"; then
  kill -INT "$p1"
  wait_for "$T/e1" "stopping after the current batch" || true
  kill -INT "$p1"; wait "$p1"; rc=$?
  if [ $rc -eq 130 ] && has "$T/e1" "stopped at once" && ! has "$T/e1" "interrupted during" \
     && [ -z "$(leftovers)" ] && clean "$T/e1"; then pass second_sigint_exits_at_once
  else fail second_sigint_exits_at_once "rc=$rc $(cat "$T/e1"; leftovers)"; fi
else fail second_sigint_exits_at_once "no features pass: $(cat "$T/o1" "$T/e1")"; kill -KILL "$p1" 2>/dev/null; fi

# ^C during training: the checkpoint is named and the printed command resumes the run as printed
rm -f "$T/o1" "$T/e1"
"$G" "${SLOW[@]}" --no-cache --epochs 2 --out "$T/r.gft" --checkpoint "$T/r.ckpt" >"$T/o1" 2>"$T/e1" & p1=$!; PIDS+=("$p1")
if stop_when -t 1 "$p1" file_has "$T/o1" "^standardized the"; then   # stopped before its first step
  kill -INT "$p1"; kill -CONT "$p1"; wait "$p1"; rc=$?
  cmd=$(sed -n 's/^graft: continue with: graft //p' "$T/e1")
  if [ $rc -eq 130 ] && has "$T/e1" "checkpoint written to $T/r.ckpt" && [ -f "$T/r.ckpt" ] && [ -n "$cmd" ]; then
    eval "\"$G\" $cmd" >"$T/o2" 2>"$T/e2"; rc2=$?
    if [ $rc2 -eq 0 ] && has "$T/o2" "^resuming from $T/r.ckpt" && has "$T/o2" "^saved $T/r.gft" && [ -z "$(leftovers)" ]; then
      pass sigint_in_training_resume_hint_works
    else fail sigint_in_training_resume_hint_works "graft $cmd: rc=$rc2 $(tail -5 "$T/o2"; cat "$T/e2")"; fi
  elif [ $rc -eq 0 ]; then echo "SKIP sigint_in_training_resume_hint_works: the run ended before the signal"
  else fail sigint_in_training_resume_hint_works "rc=$rc $(cat "$T/e1")"; fi
else fail sigint_in_training_resume_hint_works "never started: $(cat "$T/o1" "$T/e1")"; kill -KILL "$p1" 2>/dev/null; fi

# ---- extract: features + labels + paths + classes, read back with numpy
"$G" extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/fold" --input-size 32x32 --layer 3 \
  --out "$T/f.npy" >"$T/o" 2>"$T/e"; rc=$?
if [ $rc -eq 0 ] && "$PY" - "$T" <<'EOF'
import sys, numpy as np
t = sys.argv[1]
x = np.load(t + "/f.npy"); y = np.load(t + "/f.labels.npy")
paths = open(t + "/f.paths.txt").read().splitlines()
classes = open(t + "/f.classes.txt").read().splitlines()
assert x.shape == (12, 8, 8, 16) and x.dtype == np.float32, x.shape
assert y.shape == (12,) and y.dtype == np.int64, (y.shape, y.dtype)
assert classes == ["blue", "green", "red"], classes
assert len(paths) == 12
for p, l in zip(paths, y):   # each path sits in its label's class folder
    assert p.startswith(t + "/fold/" + classes[l] + "/"), (p, l)
assert paths == sorted(paths)
EOF
then pass extract_writes_labels_paths_classes
else fail extract_writes_labels_paths_classes "rc=$rc $(cat "$T/e")"; fi
"$G" extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --layer 3 --out "$T/g" >"$T/o" 2>"$T/e"; rc=$?
if [ $rc -eq 0 ] && [ "$(sed -n 3p "$T/g.paths.txt")" = "$T/train.bin#2" ] && "$PY" -c "
import numpy as np; y = np.load('$T/g.labels.npy'); assert list(y[:12]) == [i % 10 for i in range(12)], y[:12]"; then
  pass extract_cifar_labels_and_records
else fail extract_cifar_labels_and_records "rc=$rc $(cat "$T/e")"; fi

# ---- predict DIR: every image under it (recursively, sorted), other files skipped
"$G" "${TRAIN[@]}" --data "$T/fold" --input-size 32x32 --head flatten,dense:3:softmax --out "$T/fm.gft" >/dev/null 2>&1
echo notes >"$T/fold/README.txt"
"$G" predict --model "$T/fm.gft" --json --top 1 "$T/fold" >"$T/o" 2>"$T/e"; rc=$?
if [ $rc -eq 0 ] && has "$T/e" "$T/fold: 12 images" && "$PY" - "$T/o" "$T/fold" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
want = sorted(f"{sys.argv[2]}/{c}/{i:02d}.png" for c in ("blue", "green", "red") for i in range(4))
assert [r["image"] for r in rows] == want, [r["image"] for r in rows]
EOF
then pass predict_directory
else fail predict_directory "rc=$rc $(cat "$T/e" "$T/o" | head)"; fi
mkdir "$T/noimg"; echo x >"$T/noimg/a.txt"
"$G" predict --model "$T/fm.gft" "$T/noimg" >"$T/o" 2>"$T/e"; rc=$?
if [ $rc -ne 0 ] && has "$T/e" "^graft: error: $T/noimg: a directory with no JPEG/PNG/BMP images" && clean "$T/e"; then
  pass predict_empty_directory_error
else fail predict_empty_directory_error "rc=$rc $(cat "$T/e")"; fi
exit 0
