#!/usr/bin/env bash
# test_faults.sh — faults a training run must survive (issue 15).
#
# kill -9: a `graft train` run (tiny darknet base, 1000 CIFAR-like images,
# a 260k-parameter head, 4 epochs: a checkpoint of ~2 MB after each epoch,
# a ~1 MB model, a ~4 MB features-cache entry) is killed with SIGKILL at a
# chosen moment, the trials cycling through: the features pass, the middle
# of a random epoch, during a random checkpoint write (its temp file seen),
# during the model write, a random time.  Afterwards:
#   - the model is absent, or complete: byte-identical to an uninterrupted run's;
#   - the run is finished by `--resume` from its checkpoint when there is
#     one (so the checkpoint loads), else by running it again; either way
#     the model is byte-identical (cmp) to the uninterrupted run's;
#   - no temp or lock file is left (the recovering run removes what the
#     killed one left beside its outputs and in the features cache), and no
#     features-cache entry is damaged.
# FAULT_TRIALS trials (default 5; 2 under ASan; `make test-faults`: 50);
# the tally says which moments were hit (what the killed run left shows it).
#
# Disk full (a 4 MB tmpfs mounted here; root needed, else SKIP; unmounted
# on exit): a checkpoint write and a model write that run out of space give
# "graft: error: ... No space left on device" naming the file, exit 1,
# leave the previous checkpoint / model intact (the checkpoint still
# resumes to the uninterrupted model) and no temp file.
set -u
. "$(dirname "$0")/lib.sh"
MNT=""
faults_cleanup() {   # the tmpfs first, then lib.sh's cleanup (the main shell only, as there)
  [ "$BASHPID" = "$$" ] || return 0
  [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
  lib_cleanup
}
trap faults_cleanup EXIT
unset GRAFT_CACHE_MAX GRAFT_FEATURES_CACHE

ASAN=0
ldd "$G" 2>/dev/null | grep -q libasan && ASAN=1
TRIALS=${FAULT_TRIALS:-$([ $ASAN = 1 ] && echo 2 || echo 5)}

need_numpy_pil faults "to make the test data"
"$PY" "$GEN" cifar "$T/train.bin" 1000 3 || { echo "FAIL faults_setup: gen_cli.py"; exit 1; }
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"
EPOCHS=4
ARGS=(train --base "darknet:$T/tiny.cfg" --weights none --head flatten,dense:256:relu,dense:10:softmax
      --data "$T/train.bin" --epochs $EPOCHS)
RESUME=(train --data "$T/train.bin" --epochs $EPOCHS --resume)   # a checkpoint holds the model

# the uninterrupted run
mkdir -p "$T/ref"
GRAFT_HOME="$T/ref/home" "$G" "${ARGS[@]}" -q --out "$T/ref/m.gft" 2>"$T/ref/err" \
  || { echo "FAIL faults_reference_run: $(cat "$T/ref/err")"; exit 1; }

rand_sleep() {  # rand_sleep MAX_MS: sleep 0..MAX_MS milliseconds
  sleep "$(printf '0.%03d' $((RANDOM % ($1 + 1))))"
}
# kill_at MOMENT DIR: starts the run in DIR, kills it (SIGKILL) at MOMENT; prints the exit status
kill_at() {
  local moment=$1 d=$2 pid k seen n
  GRAFT_HOME="$d/home" "$G" "${ARGS[@]}" --out "$d/m.gft" >"$d/out" 2>"$d/err" &
  pid=$!
  case $moment in
    features)   # once the features pass has started: 0-80 ms into it (it lasts ~100 ms)
      while kill -0 $pid 2>/dev/null && ! grep -q "^features (train): running" "$d/out" 2>/dev/null; do sleep 0.002; done
      rand_sleep 80 ;;
    epoch)      # in the middle of epoch k + 1 (k in 1..EPOCHS-1): after epoch k's line
      k=$((RANDOM % (EPOCHS - 1) + 1))
      while kill -0 $pid 2>/dev/null && ! grep -q "^Epoch $k/" "$d/out" 2>/dev/null; do sleep 0.002; done
      rand_sleep 60 ;;
    checkpoint) # while the k-th checkpoint's temp file exists (a tight loop: the write takes ms)
      k=$((RANDOM % EPOCHS + 1)); seen=0; n=0
      while kill -0 $pid 2>/dev/null; do
        if [[ -e "$d/m.gft.ckpt.tmp.$pid" ]]; then
          [ $seen = 0 ] && n=$((n + 1)); seen=1
          [ $n -ge $k ] && break
        else seen=0; fi
      done ;;
    model)      # while the model's temp file exists
      while kill -0 $pid 2>/dev/null && ! [[ -e "$d/m.gft.tmp.$pid" ]]; do :; done ;;
    random)
      rand_sleep $([ $ASAN = 1 ] && echo 5000 || echo 900) ;;
  esac
  kill -9 $pid 2>/dev/null
  wait $pid
  echo "$? $pid"
}

declare -A tally=()
bad=0
moments=(features epoch checkpoint model random)
for ((i = 0; i < TRIALS; i++)); do
  moment=${moments[$((i % 5))]}
  d="$T/t$i"; mkdir -p "$d"
  read -r rc pid < <(kill_at "$moment" "$d")
  # what the killed run left says where it was
  if [ "$rc" = 0 ]; then hit="finished"
  elif [ -e "$d/m.gft.tmp.$pid" ]; then hit="model write"
  elif [ -e "$d/m.gft.ckpt.tmp.$pid" ]; then hit="checkpoint write"
  elif compgen -G "$d/home/cache/features/*.tmp.$pid" >/dev/null; then hit="cache write"
  elif [ -e "$d/m.gft" ]; then hit="after the model write"
  elif ! grep -q "^Epoch 1/" "$d/out"; then hit="features pass or epoch 1"
  else hit="mid-training"; fi
  tally[$hit]=$(( ${tally[$hit]:-0} + 1 ))
  why=""
  # the model: absent or complete
  if [ -e "$d/m.gft" ] && ! cmp -s "$d/m.gft" "$T/ref/m.gft"; then why="a model file that is not the full model"; fi
  # finish the run: from the checkpoint if there is one, else from the start
  if [ -z "$why" ]; then
    if [ -e "$d/m.gft.ckpt" ]; then how="resume"
      GRAFT_HOME="$d/home" "$G" "${RESUME[@]}" "$d/m.gft.ckpt" -q --out "$d/m.gft" >"$d/out2" 2>"$d/err2"
    else how="rerun"
      GRAFT_HOME="$d/home" "$G" "${ARGS[@]}" -q --out "$d/m.gft" >"$d/out2" 2>"$d/err2"
    fi
    rc2=$?
    left=$(cd "$d" && find . -name '*.tmp.*' -o -name '*.lock' | tr '\n' ' ')
    if [ $rc2 -ne 0 ]; then why="$how failed (exit $rc2): $(tail -3 "$d/err2")"
    elif ! cmp -s "$d/m.gft" "$T/ref/m.gft"; then why="after $how the model differs from the uninterrupted run's"
    elif [ -n "$left" ]; then why="left behind: $left"
    elif has "$d/err2" "damaged|Sanitizer|runtime error"; then why="$(tail -3 "$d/err2")"
    fi
  fi
  if [ -n "$why" ]; then
    bad=$((bad + 1))
    echo "    trial $i (kill at $moment, hit: $hit): $why" >&2
    echo "FAIL kill9_trial_$i: kill at $moment (hit: $hit): $why"
  else
    rm -rf "$d"
  fi
done
summary=""
while read -r h; do summary+="$h ${tally[$h]}, "; done < <(printf '%s\n' "${!tally[@]}" | sort)
if [ $bad = 0 ]; then pass "kill9_resume ($TRIALS trials; hit: ${summary%, })"
else fail kill9_resume "$bad of $TRIALS trials failed (hit: ${summary%, })"; fi

# ---- disk full
MNT="$T/full"; mkdir -p "$MNT"
if ! mount -t tmpfs -o size=4m tmpfs "$MNT" 2>/dev/null; then
  MNT=""
  echo "SKIP disk_full: cannot mount a tmpfs here (needs root and mount permission)"
  exit 0
fi
# a checkpoint write runs out of space: epoch 1's checkpoint (~3 MB) fits, epoch 2's temp does not
GRAFT_HOME="$T/ref/home" "$G" "${ARGS[@]}" -q --checkpoint "$MNT/c.ckpt" --out "$T/df1.gft" >"$T/out" 2>"$T/err"; rc=$?
cp "$MNT/c.ckpt" "$T/saved.ckpt" 2>/dev/null
if [ $rc -eq 1 ] && has "$T/err" "^graft: error: .*$MNT/c.ckpt.*No space left on device" && ! has "$T/err" "Sanitizer|runtime error" \
   && [ -s "$T/saved.ckpt" ] && [ "$(ls -A "$MNT")" = "c.ckpt" ] && ! [ -e "$T/df1.gft" ] \
   && GRAFT_HOME="$T/ref/home" "$G" "${RESUME[@]}" "$T/saved.ckpt" --checkpoint "$T/saved.ckpt" -q --out "$T/df1.gft" 2>>"$T/err" \
   && cmp -s "$T/df1.gft" "$T/ref/m.gft"; then
  pass disk_full_checkpoint
else fail disk_full_checkpoint "rc=$rc files: $(ls -A "$MNT") $(cat "$T/err" | tail -5)"; fi
# a model write runs out of space: the model there before stays as it was
rm -f "$MNT"/*
head -c 1000000 /dev/urandom >"$MNT/m.gft"; cp "$MNT/m.gft" "$T/old.gft"
head -c 2500000 /dev/zero >"$MNT/filler"   # 0.5 MB left: less than the ~1 MB model
GRAFT_HOME="$T/ref/home" "$G" "${ARGS[@]}" -q --checkpoint "$T/df2.ckpt" --out "$MNT/m.gft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 1 ] && has "$T/err" "^graft: error: .*$MNT/m.gft.*No space left on device" && ! has "$T/err" "Sanitizer|runtime error" \
   && cmp -s "$MNT/m.gft" "$T/old.gft" && [ "$(ls -A "$MNT" | sort | tr '\n' ' ')" = "filler m.gft " ] \
   && rm "$MNT/filler" && GRAFT_HOME="$T/ref/home" "$G" "${RESUME[@]}" "$T/df2.ckpt" -q --out "$MNT/m.gft" 2>>"$T/err" \
   && cmp -s "$MNT/m.gft" "$T/ref/m.gft"; then
  pass disk_full_model
else fail disk_full_model "rc=$rc files: $(ls -A "$MNT") $(cat "$T/err" | tail -5)"; fi
