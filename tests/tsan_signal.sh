#!/usr/bin/env bash
# tsan_signal.sh — the CLI's threads under ThreadSanitizer (tests/run.sh runs
# it with GRAFT_BIN = the build-tsan graft; not a test_*.sh, so the release
# and ASan suites do not run it):
#   - `graft train --no-cache` (the batcher's loader threads every epoch, the
#     OpenMP pool) stopped by SIGINT after an epoch: the signal thread sets the
#     stop flag, the run writes its checkpoint and exits 130; --resume finishes;
#   - a second SIGINT: the signal thread removes the temp/lock files and exits;
#   - `graft extract` (two loader threads).
# Each: the expected exit status and no ThreadSanitizer report.
set -u
. "$(dirname "$0")/lib.sh"
G=${GRAFT_BIN:-build-tsan/graft}
tsan_clean() { ! grep -q "ThreadSanitizer" "$@"; }
if ! [ -x "$G" ]; then echo "SKIP tsan_signal: no $G"; exit 0; fi
need_numpy_pil tsan_signal "to make the test data"
"$PY" "$GEN" cifar "$T/train.bin" 300 1 || { echo "FAIL tsan_setup: gen_cli.py"; exit 1; }
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"
export GRAFT_HOME="$T/home"
R=(--data "$T/train.bin" --epochs 30 --no-cache)
ARGS=(train --base "darknet:$T/tiny.cfg" --weights none --head flatten,dense:10:softmax "${R[@]}")

# one SIGINT after the first epoch: checkpoint, exit 130, then --resume
setsid "$G" "${ARGS[@]}" --out "$T/m.gft" >"$T/out" 2>"$T/err" & pid=$!; PIDS+=("$pid")   # its own session: signals go to it alone
stop_when -t 1 $pid file_has "$T/out" "^Epoch 1/"   # stopped after the first epoch
kill -INT $pid 2>/dev/null; kill -CONT $pid 2>/dev/null; wait $pid; rc=$?
if [ $rc -eq 0 ]; then echo "SKIP tsan_sigint_resume: the run ended before SIGINT"
elif [ $rc -eq 130 ] && [ -s "$T/m.gft.ckpt" ] && tsan_clean "$T/err" \
   && "$G" train --resume "$T/m.gft.ckpt" "${R[@]}" -q --out "$T/m.gft" 2>"$T/err2" && [ -s "$T/m.gft" ] && tsan_clean "$T/err2"; then
  pass tsan_sigint_resume
else fail tsan_sigint_resume "rc=$rc $(grep -A12 -m1 ThreadSanitizer "$T/err" "$T/err2" 2>/dev/null) $(tail -3 "$T/err")"; fi

# two SIGINTs: the second exits at once from the signal thread (out removed first: the
# loop below must see this run's "Epoch 1/", not the last run's)
rm -f "$T/out" "$T/err"
setsid "$G" "${ARGS[@]}" --out "$T/n.gft" >"$T/out" 2>"$T/err" & pid=$!; PIDS+=("$pid")
stop_when -t 1 $pid file_has "$T/out" "^Epoch 1/"
kill -INT $pid 2>/dev/null; kill -CONT $pid 2>/dev/null; sleep 0.05; kill -INT $pid 2>/dev/null; wait $pid; rc=$?
if [ $rc -eq 0 ]; then echo "SKIP tsan_second_sigint: the run ended before SIGINT"
elif [ $rc -eq 130 ] && tsan_clean "$T/err" && [ -z "$(ls "$T" | grep -E '^n\.gft.*tmp')" ]; then pass tsan_second_sigint
else fail tsan_second_sigint "rc=$rc $(grep -A12 -m1 ThreadSanitizer "$T/err") $(ls "$T")"; fi

# extract: the batcher's two loader threads
"$G" extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --layer 3 --out "$T/f.npy" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && [ -s "$T/f.npy" ] && tsan_clean "$T/err"; then pass tsan_extract
else fail tsan_extract "rc=$rc $(grep -A12 -m1 ThreadSanitizer "$T/err") $(tail -3 "$T/err")"; fi
