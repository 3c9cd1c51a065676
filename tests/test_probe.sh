#!/usr/bin/env bash
# test_probe.sh — `graft probe`: the table has a row per distinct cut and a
# recommendation, --json parses and agrees, the real Tiny Darknet on the
# first 200 CIFAR-10 images (SKIP when ../shared/data is absent), and clean
# errors (unknown cut, --samples 0, missing data, options in the wrong place).
set -u
. "$(dirname "$0")/lib.sh"
SYN="darknet:tests/fixtures/darknet/synth.cfg"
SYNW=tests/fixtures/darknet/synth.weights
has() { grep -q -- "$2" "$1"; }   # basic regular expressions in this file

"$G" probe --help >"$T/out" 2>&1; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "--cuts" && has "$T/out" "all-pools" && has "$T/out" "--samples"; then
  pass probe_help; else fail probe_help "rc=$rc"; fi

if [ ! -x "$PY" ]; then
  echo "SKIP probe_synth: $PY is missing (needed to write the test data)"
else
  # a CIFAR-10-like .bin: 300 images whose colour depends on the class, plus noise
  "$PY" - "$T/d.bin" <<'PY'
import random, sys
r = random.Random(5)
with open(sys.argv[1], "wb") as f:
    for i in range(300):
        c = i % 10
        rec = bytearray([c])
        for ch in range(3):
            base = ((c >> ch) & 1) * 120 + (30 if c == 9 else 0)
            rec += bytes(min(255, base + r.randrange(96)) for _ in range(1024))
        f.write(rec)
PY
  # cuts: 0, 6, 13 and all-pools (1, 6, 13, 21 + the default, the last layer 22): 6 distinct
  "$G" probe --base "$SYN" --weights "$SYNW" --data "$T/d.bin" --input-size 13x11 --samples 100 \
      --cuts 0,6,13,all-pools --quiet >"$T/out" 2>"$T/err"; rc=$?
  rows=$(grep -cE "^$SYN +[0-9]+ +[0-9]+x[0-9]+x[0-9]+ +(gap|vec) " "$T/out")
  if [ $rc -eq 0 ] && [ "$rows" -eq 6 ] && has "$T/out" "^probe: 100 samples (stratified, seed 1), 10 classes" \
     && grep -qE "^ +flat +[0-9]+ " "$T/out" && [ "$(grep -c "<- recommended" "$T/out")" -eq 1 ] \
     && has "$T/out" "^recommendation: --base $SYN --weights $SYNW --cut " && [ ! -s "$T/err" ]; then
    pass probe_synth_table; else fail probe_synth_table "rc=$rc rows=$rows $(cat "$T/out" "$T/err")"; fi

  "$G" probe --base "$SYN" --weights "$SYNW" --data "$T/d.bin" --input-size 13x11 --samples 100 \
      --cuts 0,6,13,all-pools --json --quiet >"$T/json" 2>"$T/err"; rc=$?
  chk=$("$PY" - "$T/json" "$T/out" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
rows = j["rows"]
assert len(rows) == 6, len(rows)
assert [r["node"] for r in rows] == sorted(r["node"] for r in rows)
assert j["samples"] == 100 and j["classes"] == 10 and j["folds"] == 5
for r in rows:
    p = r["pooled"]
    assert 0 <= p["ridge_acc"] <= 1 and p["features"] == r["shape"][2], r
    assert (r["flat"] is None) == (r["shape"][0] * r["shape"][1] == 1), r
# the table printed the same numbers (the first cut's pooled accuracy)
table = open(sys.argv[2]).read()
assert "%.4f" % rows[0]["pooled"]["ridge_acc"] in table
best = j["best"]
assert any(r["cut"] == best["cut"] for r in rows)
print("ok")
PY
  )
  if [ $rc -eq 0 ] && [ "$chk" = ok ]; then pass probe_json; else fail probe_json "rc=$rc $chk $(head -c 600 "$T/json")"; fi
  # --base A,B with --weights W1,W2 (the list form graft train takes): the same
  # rows as one --base/--weights pair each, in the list's order
  "$G" probe --base "$SYN,$SYN" --weights "$SYNW,none" --data "$T/d.bin" --input-size 13x11 --samples 100 \
      --cuts 6,13 --json --quiet >"$T/jl" 2>"$T/err"; rc=$?
  "$G" probe --base "$SYN" --weights "$SYNW" --base "$SYN" --weights none --data "$T/d.bin" --input-size 13x11 \
      --samples 100 --cuts 6,13 --json --quiet >"$T/jr" 2>>"$T/err"; rc2=$?
  chk=$("$PY" - "$T/jl" "$T/jr" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
key = lambda j: [(r["base"], r["weights"], r["cut"], r["pooled"]["ridge_acc"]) for r in j["rows"]]
assert len(a["rows"]) == 4, a["rows"]
assert key(a) == key(b), (key(a), key(b))
assert [r["weights"] for r in a["rows"]] == ["tests/fixtures/darknet/synth.weights"] * 2 + ["none"] * 2
print("ok")
PY
  )
  if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ "$chk" = ok ]; then pass probe_base_list
  else fail probe_base_list "rc=$rc/$rc2 $chk $(cat "$T/err")"; fi
fi

# the real Tiny Darknet on the first 200 CIFAR-10 training images
TD=$DATA/weights/darknet-tiny
C200=$DATA/cifar-10-extra/train_first200_lossless.bin
if [ -f "$TD/tiny.cfg" ] && [ -f "$TD/tiny.weights" ] && [ -f "$C200" ]; then
  "$G" probe --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --data "$C200" --samples 200 --quiet \
      >"$T/out" 2>&1; rc=$?
  # all-pools at 32x32: the 4 max-pools (1, 3, 8, 13) and the default cut 18
  cuts=$(grep -E "^darknet:.* (gap|vec) " "$T/out" | awk '{print $2}' | paste -sd, -)
  if [ $rc -eq 0 ] && [ "$cuts" = "1,3,8,13,18" ] && has "$T/out" "recommendation: "; then
    pass probe_tiny_darknet; else fail probe_tiny_darknet "rc=$rc cuts=$cuts $(cat "$T/out")"; fi
else
  echo "SKIP probe_tiny_darknet: $TD/tiny.cfg, tiny.weights or $C200 not found"
fi

# errors: each a clean message, non-zero exit, no table
err_case() {  # name, expected message (grep pattern), args...
  local name=$1 want=$2; shift 2
  "$G" probe "$@" >"$T/out" 2>&1; local rc=$?
  if [ $rc -ne 0 ] && grep -q -- "^graft: error: .*$want" "$T/out" && ! has "$T/out" "recommendation"; then
    pass "$name"; else fail "$name" "rc=$rc $(cat "$T/out")"; fi
}
D1=$T/d.bin; [ -f "$D1" ] || D1=tests/fixtures/darknet/synth_io.bin
err_case probe_unknown_cut "has no layer 'nope'" --base "$SYN" --weights "$SYNW" --data "$D1" --input-size 13x11 --cuts 0,nope
err_case probe_samples_zero "--samples '0': expected a positive integer" --base "$SYN" --data "$D1" --samples 0
err_case probe_missing_data "$T/none.bin" --base "$SYN" --weights "$SYNW" --data "$T/none.bin" --input-size 13x11
err_case probe_no_data "--data is required" --base "$SYN"
err_case probe_list_weights_count "follows a list of 2 bases: give 2 weights" --base "$SYN,$SYN" --weights "$SYNW" --data "$D1"
err_case probe_list_empty_item "an empty (or over-long) name in the list" --base "$SYN,,$SYN" --data "$D1"
err_case probe_no_base "--base is required" --data "$D1"
err_case probe_weights_first "comes before any --base" --weights "$SYNW" --base "$SYN" --data "$D1"
err_case probe_bad_weights "synth_io.bin" --base "$SYN" --weights tests/fixtures/darknet/synth_io.bin --data "$D1" --input-size 13x11
err_case probe_bad_folds "--folds '1'" --base "$SYN" --data "$D1" --folds 1
