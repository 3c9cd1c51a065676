#!/bin/bash
# test_cli_budget.sh — graft train --budget through the CLI: bad values and
# conflicting options refused (exit 2), the plan table and the pick with the
# measured rates replaced by GRAFT_BUDGET_FAKE (so the epochs are the
# hand-computed ones below, whatever the machine's speed), a run that goes
# to its end, the plan and budget in the checkpoint, --resume going on with
# them, --report and --log.  No timing is asserted.
set -u
. "$(dirname "$0")/lib.sh"
need_numpy_pil budget
# --report draws its charts with cairo: fontconfig's own allocations are not graft's leaks
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$PWD/tests/lsan-fontconfig.supp"
$PY $GEN cifar "$T/train.bin" 200 1 && $PY $GEN cifar "$T/test.bin" 100 2 || { fail budget_setup "gen_cli"; exit 0; }
# a small darknet base, 64x64 native: conv, pool, conv, pool, conv, pool, conv (darknet layers 0..6)
{
  printf '[net]\nheight=64\nwidth=64\nchannels=3\n\n'
  for f in 8 16 16; do
    printf '[convolutional]\nbatch_normalize=1\nfilters=%d\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n' $f
    printf '[maxpool]\nsize=2\nstride=2\n\n'
  done
  printf '[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n'
} > "$T/b.cfg"
BASE=(--base "darknet:$T/b.cfg" --weights none)

# ---- bad values and conflicts: usage errors naming the problem
ok=1
for v in 0 -5m 5x 5mm abc '' 3s 200h; do
  $G train --data "$T/train.bin" "${BASE[@]}" --budget "$v" --out "$T/x.gft" > "$T/o" 2> "$T/e"; rc=$?
  { [ $rc = 2 ] && clean_fail $rc "$T/e" "--budget" && [ ! -e "$T/x.gft" ]; } || { ok=0; fail "budget_bad_value" "'$v': rc $rc $(cat "$T/e")"; }
done
[ $ok = 1 ] && pass budget_bad_values
ok=1
for opt in "--epochs 3" "--cut 4" "--unfreeze 4" "--input-size 32" "--augment" "--base-lr-mult 0.5" "--lr 0.1" "--from $T/x.gft"; do
  # shellcheck disable=SC2086
  $G train --data "$T/train.bin" --budget 1m $opt --out "$T/x.gft" > "$T/o" 2> "$T/e"; rc=$?
  { [ $rc = 2 ] && has "$T/e" "^graft: error: --budget chooses .*drop ${opt%% *}"; } || { ok=0; fail budget_conflict "$opt: rc $rc $(cat "$T/e")"; }
done
[ $ok = 1 ] && pass budget_conflicts

# ---- the plan, rates injected.  n_train 200, n_test 100; spent 5 s of 60:
# left = 60 - 5 - 2% = 53.8; the cached prefix's pass 1000 img/s over the
# images and their mirrors: once 0.4 s; the frozen part 1000 img/s: eval
# twice (--tta flip) 0.2 s; one block fine-tuned from the cached prefix at
# 20 img/s: 10 s (+ the checkpoint's ~0.1) per epoch -> floor(53.2 / 10.1)
# = 5 epochs (>= 4, < 8); two blocks at 5 img/s: 40 s -> 1 (does not fit);
# the head at 10000 img/s: 40 (the cap).  The pick: fine-tuning one block
# (from darknet layer 6) on the cached prefix, 5 epochs.
export GRAFT_BUDGET_FAKE="feat=1000,head=10000,ft1=20,ft2=5,prefix=1000,c1=20,c2=5,spent=5,cut=default"
$G train --data "$T/train.bin" --test "$T/test.bin" "${BASE[@]}" --budget 60s --out "$T/a.gft" > "$T/a.out" 2> "$T/a.err" &
PIDS+=($!)
if wait_for "$T/a.out" "^budget: .* planned of|^graft: error" && grep -q -- "<- chosen" "$T/a.out"; then   # the line after the table
  ch=$(grep -- "<- chosen" "$T/a.out")
  if [[ $ch =~ ", from 6, cached " ]] && [ "$(echo "$ch" | awk '{print $(NF-2)}')" = 5 ] &&
     has "$T/a.out" "^budget plan: 1m00s in all, 5s spent" && has "$T/a.out" "^candidate +probe +once s +s/epoch" &&
     [ "$(grep -cE ', from 4, cached .* 0 +\(does not fit\)' "$T/a.out")" = 2 ] &&
     [ "$(grep -cE ', frozen .* 40 *$' "$T/a.out")" = 2 ] &&
     has "$T/a.out" "^budget: fine-tuning fits at least 4 epochs"; then
    pass budget_plan_table
  else
    fail budget_plan_table "$(grep -A8 '^budget plan' "$T/a.out")"
  fi
else
  fail budget_plan_table "no plan: $(tail -3 "$T/a.err")"
fi
# (TERM, not INT: a background job of a script starts with SIGINT ignored, and graft takes it
# over only once training starts; a SIGINT sent right after the plan was lost, and the run went
# on for its whole budget)
kill -TERM "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null

# ---- a base without pools (strided convolutions, as MobileNet's): the
# unfreeze points are the block starts nearest to a third and to a half of
# the multiply-adds up to the cut (darknet layer 5).  By hand, per 64x64
# image: layer 0 4096 positions x 3*3*3*8 = 884,736; 1: 1024 x 1,152 =
# 1,179,648; 2: 1024 x 2,304 = 2,359,296; 3: 256 x 4,608 = 1,179,648; 4 and
# 5: 256 x 9,216 = 2,359,296 each; total 10,321,920.  From 5: 0.229 (the
# nearest to 1/3; from 4: 0.457), from 4: 0.457 (the nearest to 1/2; from
# 3: 0.571): "from 5" and "from 4".  (32x32 scales every layer alike.)
{
  printf '[net]\nheight=64\nwidth=64\nchannels=3\n\n'
  for fs in "8 1" "16 2" "16 1" "32 2" "32 1" "32 1"; do
    set -- $fs
    printf '[convolutional]\nfilters=%d\nsize=3\nstride=%d\npad=1\nactivation=leaky\n\n' "$1" "$2"
  done
} > "$T/np.cfg"
# 60 s, left 53.8: from 5 cached at 400 img/s: 0.5 s an epoch (+ the
# checkpoint), >= 8 epochs; from 4 at 20: ~10 s, 5: the pick is from 5.
GRAFT_BUDGET_FAKE="feat=1000,head=10000,ft1=20,ft2=5,prefix=1000,c1=400,c2=20,spent=5,cut=default" \
  $G train --data "$T/train.bin" --test "$T/test.bin" --base "darknet:$T/np.cfg" --weights none --budget 20s \
  --out "$T/np.gft" > "$T/np.out" 2> "$T/np.err"; rc=$?
ch=$(grep -- "<- chosen" "$T/np.out")
if [ $rc = 0 ] && [[ $ch =~ ", from 5, cached " ]] && [ "$(grep -cE ', from 5, cached ' "$T/np.out")" = 2 ] &&
   [ "$(grep -cE ', from 4, cached ' "$T/np.out")" = 2 ] && [ "$(grep -cE ', from [0-3],? ' "$T/np.out")" = 0 ] &&
   has "$T/np.out" "^cached prefix: '4' output for 200 samples and their mirrors" && clean "$T/np.err"; then
  pass budget_unfreeze_without_pools
else
  fail budget_unfreeze_without_pools "rc $rc: $(grep -A7 '^budget plan' "$T/np.out") $(tail -3 "$T/np.err")"
fi
# the plan's levers are the run's settings, saved for --resume: label smoothing 0.1, the test-time flip, the cached prefix
if $PY - "$T/np.gft" > "$T/meta" 2>&1 <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
tr = json.loads(meta["graft.training"])
cfg = tr.get("config", tr)
p = cfg["plan"]
assert p["mode"] == "finetune" and p["unfreeze"] == "5" and p["cached_prefix"] is True and abs(p["lr"] - 0.005) < 1e-6, p
assert abs(cfg["label_smoothing"] - 0.1) < 1e-6 and cfg["tta"] == "flip" and cfg["cache_prefix"] is True, cfg
print("ok")
PY
then pass budget_plan_levers; else fail budget_plan_levers "$(cat "$T/meta")"; fi
# the cached prefix not fitting (cache=off): the same points, run on every batch, no ", cached"
GRAFT_BUDGET_FAKE="feat=1000,head=10000,ft1=20,ft2=5,prefix=1000,c1=400,c2=20,spent=5,cut=default,cache=off" \
  $G train --data "$T/train.bin" --base "darknet:$T/np.cfg" --weights none --budget 60s \
  --out "$T/np2.gft" > "$T/np2.out" 2> "$T/np2.err" &
PIDS+=($!)
if wait_for "$T/np2.out" "^budget: .* planned of|^graft: error" && ch=$(grep -- "<- chosen" "$T/np2.out") &&
   [[ $ch =~ ", from 5 " ]] && ! has "$T/np2.out" ", cached " && [ "$(grep -cE ', from 4 ' "$T/np2.out")" = 2 ]; then
  pass budget_no_prefix_cache
else
  fail budget_no_prefix_cache "$(grep -A7 '^budget plan' "$T/np2.out") $(tail -3 "$T/np2.err")"
fi
kill -TERM "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null

# ---- above 64x64 the probe scores only the cuts from the best one so far on.  b.cfg at
# 128x128: its candidate cuts are the pools 1, 3, 5 and the default cut 6 (4 cuts); the data is
# separable at every cut (ridge 1.0), so the best is the shallowest tied, '3' at 64x64 (as at
# 32x32); 96x96 and 128x128 then score 3, 5 and 6: 3 cuts.
sed 's/height=64/height=128/; s/width=64/width=128/' "$T/b.cfg" > "$T/b128.cfg"
GRAFT_BUDGET_FAKE="feat=1000,head=10000,ft1=20,ft2=5,prefix=1000,c1=400,c2=20,spent=5" \
  $G train --data "$T/train.bin" --base "darknet:$T/b128.cfg" --weights none --budget 10m \
  --out "$T/b128.gft" > "$T/b128.out" 2> "$T/b128.err" &
PIDS+=($!)
pr() { grep -E "^budget: probed darknet:.*b128\.cfg at $1x$1: " "$T/b128.out"; }
if wait_for "$T/b128.out" "^budget: .* planned of|^graft: error" &&
   four="4 cuts on 200 images in .* best cut '3' " three=": 3 cuts on 200 images" &&
   [[ $(pr 32) =~ $four ]] && [[ $(pr 64) =~ $four ]] && [[ $(pr 96) =~ $three ]] && [[ $(pr 128) =~ $three ]]; then
  pass budget_probe_cuts_from_best
else
  fail budget_probe_cuts_from_best "$(grep '^budget: probed' "$T/b128.out") $(tail -3 "$T/b128.err")"
fi
kill -TERM "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null

# ---- a plan of 18 candidates (6 sizes up to a 224x224 base, 3 ways each)
# is longer than 4,096 characters: the settings saved in the model and the
# checkpoints hold it all (they once stopped the run at its start)
sed 's/height=64/height=224/; s/width=64/width=224/' "$T/np.cfg" > "$T/np224.cfg"
GRAFT_BUDGET_FAKE="feat=1000,head=10000,ft1=20,ft2=5,prefix=1000,c1=400,c2=20,spent=5,cut=default" \
  $G train --data "$T/train.bin" --base "darknet:$T/np224.cfg" --weights none --budget 10m \
  --checkpoint "$T/big.ckpt" --out "$T/big.gft" > "$T/big.out" 2> "$T/big.err" &
PIDS+=($!)
if wait_for "$T/big.out" "^Epoch 2/|^graft: error" && wait_for_file "$T/big.ckpt" &&
   $PY - "$T/big.ckpt" > "$T/meta" 2>&1 <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
cfg = json.loads(meta["graft.training"])["config"]
p = cfg["plan"]
assert len(p["candidates"]) == 18 and len(json.dumps(cfg)) > 4096, (len(p["candidates"]), len(json.dumps(cfg)))
assert sorted({c["candidate"].split()[1] for c in p["candidates"]}) == sorted(
    ["%dx%d" % (s, s) for s in (32, 64, 96, 128, 160, 224)]), p["candidates"]
print("ok", len(json.dumps(cfg)))
PY
then
  pass budget_long_plan_saved
else
  fail budget_long_plan_saved "$(tail -2 "$T/big.err") $(cat "$T/meta" 2>/dev/null)"
fi
kill -INT "${PIDS[-1]}" 2>/dev/null; wait "${PIDS[-1]}" 2>/dev/null

# ---- 15 s: left 9.4: no fine-tuning fits 4 epochs; the frozen head, 40
# epochs.  It runs to its end, with a checkpoint kept, a report and a log.
export GRAFT_BUDGET_FAKE="feat=1000,head=10000,ft1=20,ft2=5,prefix=1000,c1=20,c2=5,spent=5,cut=default"
$G train --data "$T/train.bin" --test "$T/test.bin" "${BASE[@]}" --budget 15s --out "$T/b.gft" \
  --checkpoint "$T/b.ckpt" --report "$T/rep" --log "$T/b.csv" > "$T/b.out" 2> "$T/b.err"; rc=$?
ch=$(grep -- "<- chosen" "$T/b.out")
if [ $rc = 0 ] && [[ $ch =~ ", frozen " ]] && [ "$(echo "$ch" | awk '{print $(NF-2)}')" = 40 ] &&
   has "$T/b.out" "^budget: no fine-tuning fits 4 epochs" && has "$T/b.out" "^Test accuracy: " &&
   has "$T/b.out" "^budget: 15s, the run took " && [ -s "$T/b.gft" ] && clean "$T/b.err"; then
  pass budget_run
else
  fail budget_run "rc $rc: $ch / $(tail -3 "$T/b.err")"
fi
# the plan and the budget in the checkpoint (and the model)
if $PY - "$T/b.ckpt" "$T/b.gft" > "$T/meta" 2>&1 <<'PY'
import json, struct, sys
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n))["__metadata__"]
    tr = json.loads(meta["graft.training"])
    cfg = tr.get("config", tr)
    p = cfg["plan"]
    assert cfg["budget"] == 15 and cfg["budget_start"] > 1.6e9, cfg
    assert p["mode"] == "frozen" and p["epochs"] == 40 and p["cut"] and p["input_size"] in (32, 64), p
    assert sum(c["chosen"] for c in p["candidates"]) == 1 and len(p["candidates"]) == 6, p["candidates"]
    print(path, "ok", p["base"], p["input_size"], p["cut"])
PY
then pass budget_plan_saved; else fail budget_plan_saved "$(cat "$T/meta")"; fi
# --report: the plan in run.json and the page; --log: one line per epoch
if $PY -c "
import json, sys
r = json.load(open('$T/rep/run.json'))
assert r['train']['plan']['mode'] == 'frozen', r['train'].get('plan')
assert r['budget']['budget_s'] == 15 and r['budget']['used_s'] > 0, r.get('budget')
" 2> "$T/e" && has "$T/rep/index.html" "Budget plan" && [ "$(grep -c . "$T/b.csv")" -ge 2 ]; then
  pass budget_report_log
else
  fail budget_report_log "$(cat "$T/e")"
fi
# --resume goes on with the plan and what is left of the budget; --budget with it is refused
unset GRAFT_BUDGET_FAKE
$G train --resume "$T/b.ckpt" --budget 5m > "$T/o" 2> "$T/e"; rc=$?
if [ $rc = 2 ] && has "$T/e" "^graft: error: --budget with --resume: the checkpoint holds the plan"; then
  pass budget_resume_refuses_budget
else
  fail budget_resume_refuses_budget "rc $rc $(cat "$T/e")"
fi
$G train --resume "$T/b.ckpt" > "$T/r.out" 2> "$T/r.err"; rc=$?
if [ $rc = 0 ] && has "$T/r.out" "^budget: resuming the plan: .* of 15s used" && has "$T/r.out" "^budget: 15s, the run took .*counting the time before --resume" && clean "$T/r.err"; then
  pass budget_resume
else
  fail budget_resume "rc $rc $(grep budget "$T/r.out") $(tail -2 "$T/r.err")"
fi
# nothing fits: an error saying so (exit 1), no model
GRAFT_BUDGET_FAKE="feat=1,head=10,ft1=1,ft2=1,prefix=1,c1=1,c2=1,spent=5" $G train --data "$T/train.bin" "${BASE[@]}" --budget 20s \
  --out "$T/c.gft" > "$T/o" 2> "$T/e"; rc=$?
if [ $rc = 1 ] && clean_fail $rc "$T/e" "--budget 20s: no candidate fits" && [ ! -e "$T/c.gft" ] && has "$T/o" "does not fit"; then
  pass budget_nothing_fits
else
  fail budget_nothing_fits "rc $rc $(cat "$T/e")"
fi
