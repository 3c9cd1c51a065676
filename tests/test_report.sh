#!/usr/bin/env bash
# test_report.sh — `graft train/eval --report DIR`, `graft report DIR` and
# `--tensorboard DIR` end to end on tiny data (tests/fixtures/gen_cli.py) with
# the tiny darknet base (tests/fixtures/cli/tiny.cfg):
#   the page's tables equal the run's CSV log and `graft eval --json` (per-class
#   P/R/F1 recomputed from the confusion matrix, the confused pairs from its
#   cells), every chart/thumbnail decodes at its stated size
#   (tests/fixtures/report_check.py page); headless Chromium loads the page from
#   file:// with no console error and no network request and takes a screenshot
#   (report_check.py browser; skips without chromium); TensorBoard's own
#   EventAccumulator reads the event file and returns the CSV's values (a venv
#   under $B with `pip install tensorboard`; skips where the index is not
#   reachable); bad inputs: each a "graft: error:" line naming the file, a
#   non-zero exit, no sanitizer report.
set -u
. "$(dirname "$0")/lib.sh"
CHK=tests/fixtures/report_check.py
BDIR=${B:-build}
# fontconfig's process-wide caches (under cairo's chart labels) are not leaks of graft's
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$PWD/tests/lsan-fontconfig.supp"

need_numpy_pil report
"$PY" "$GEN" cifar "$T/train.bin" 300 1 && "$PY" "$GEN" cifar "$T/test.bin" 100 2 \
  || { echo "FAIL report_setup: gen_cli.py"; exit 1; }
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"
# a small learning rate: the model is still wrong on some test images (pairs to show)
TRAIN=(train --base "darknet:$T/tiny.cfg" --weights none --head flatten,dense:10:softmax
       --data "$T/train.bin" --val-split 0.2 --test "$T/test.bin" --epochs 3 --lr 0.0003)
R="$T/run"

# ---- train --report --tensorboard
"$G" "${TRAIN[@]}" --out "$T/m.gft" --log "$T/log.csv" --report "$R" --tensorboard "$T/tb" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "^report: $R/index.html$" && has "$T/out" "^tensorboard: $T/tb/events.out.tfevents" \
   && [ -s "$R/index.html" ] && [ -s "$R/run.json" ] && cmp -s "$T/log.csv" "$R/history.csv" \
   && ls "$R"/thumbs/*.png >/dev/null 2>&1 && [ -z "$(ls "$R" | grep tmp)" ]; then
  pass report_train_writes_record
else fail report_train_writes_record "rc=$rc $(tail -5 "$T/out" "$T/err")"; fi
"$G" eval --model "$T/m.gft" --data "$T/test.bin" --json >"$T/ev.json" 2>"$T/err" || fail report_eval_json "$(cat "$T/err")"
if out=$("$PY" "$CHK" page "$R" "$T/ev.json" 2>&1); then pass "report_page_tables ($out)"
else fail report_page_tables "$out"; fi

# the run record holds what the page shows: command line, cut, layers, data counts
if "$PY" - "$R/run.json" "$T/ev.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); ev = json.load(open(sys.argv[2]))
assert r["subcommand"] == "train" and "--report" in r["command"], r["command"]
assert r["model"]["cut"] == "3", r["model"]["cut"]
lay = r["model"]["layers"]
assert [l["frozen"] for l in lay].count(True) == 8, lay
assert lay[-1]["name"] == "dense" and lay[-1]["lr_mult"] == 1 and lay[-1]["params"] == 1024 * 10 + 10
assert r["data"]["train"]["images"] == 240 and sum(r["data"]["train"]["counts"]) == 240
assert r["data"]["validation"]["images"] == 60 and r["data"]["test"]["counts"] == [10] * 10
assert r["eval"]["confusion"] == ev["confusion"], "train --test and eval disagree"
assert r["peak_rss_mb"] > 1 and r["images_per_second"] > 0 and r["wall_seconds"] > 0
for p in r["eval"]["confused"]:
    probs = [x["prob"] for x in p["examples"]]
    assert probs == sorted(probs, reverse=True) and len(probs) == min(8, p["count"]), p
EOF
then pass report_run_json; else fail report_run_json "see above"; fi

# ---- headless Chromium: no console error, no network request, a screenshot
out=$("$PY" "$CHK" browser "$R" "$T/shot.png" 2>&1); rc=$?
case "$out" in
  SKIP-BROWSER*) echo "SKIP report_browser: ${out#SKIP-BROWSER }";;
  *) if [ $rc -eq 0 ]; then pass "report_browser ($out)"; else fail report_browser "$out"; fi;;
esac

# ---- graft report DIR rebuilds the same page; eval --report adds to it
cp "$R/index.html" "$T/index.before"
rm -f "$R"/*.png "$R"/*.svg
if "$G" report "$R" >"$T/out" 2>"$T/err" && cmp -s "$R/index.html" "$T/index.before" && [ -s "$R/confusion.png" ]; then
  pass report_rebuild
else fail report_rebuild "$(cat "$T/out" "$T/err")"; fi
"$G" eval --model "$T/m.gft" --data "$T/test.bin" --report "$R" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && "$PY" -c "
import json, sys; r = json.load(open('$R/run.json'))
sys.exit(0 if r['subcommand'] == 'train' and r['eval_command'].startswith('graft eval') else 1)" \
   && out=$("$PY" "$CHK" page "$R" "$T/ev.json" 2>&1); then pass report_eval_adds_to_train_run
else fail report_eval_adds_to_train_run "rc=$rc $out $(cat "$T/err")"; fi
"$G" eval --model "$T/m.gft" --data "$T/test.bin" --report "$T/evonly" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && ! [ -e "$T/evonly/history.csv" ] && out=$("$PY" "$CHK" page "$T/evonly" "$T/ev.json" 2>&1); then
  pass "report_eval_only ($out)"
else fail report_eval_only "rc=$rc $out $(cat "$T/err")"; fi

# ---- TensorBoard's reader (pip install tensorboard into a venv under the build dir)
VENV="$BDIR/tb-venv"
if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import tensorboard' 2>/dev/null; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" >/dev/null 2>&1 \
    && timeout 300 "$VENV/bin/pip" install -q --disable-pip-version-check --timeout 20 --retries 1 tensorboard \
         >"$T/pip.log" 2>&1 || { tail -3 "$T/pip.log" 2>/dev/null; rm -rf "$VENV"; }
fi
if [ -x "$VENV/bin/python" ]; then
  if out=$("$VENV/bin/python" "$CHK" tb "$T/tb" "$T/log.csv" 2>&1); then pass "report_tensorboard_reader ($out)"
  else fail report_tensorboard_reader "$out"; fi
else
  echo "SKIP report_tensorboard_reader: pip could not install tensorboard (package index unreachable?)"
fi

# ---- bad inputs: clear errors, non-zero exits
"$G" report "$T/nothing" >"$T/out" 2>"$T/err"; rc=$?
if clean_fail $rc "$T/err" "$T/nothing/run.json"; then pass report_missing_dir; else fail report_missing_dir "rc=$rc $(cat "$T/err")"; fi
mkdir -p "$T/bad1" && head -c 200 "$R/run.json" >"$T/bad1/run.json"
"$G" report "$T/bad1" >"$T/out" 2>"$T/err"; rc=$?
if clean_fail $rc "$T/err" "bad1/run.json: not a run record"; then pass report_truncated_json
else fail report_truncated_json "rc=$rc $(cat "$T/err")"; fi
mkdir -p "$T/bad2" && cp "$R/run.json" "$T/bad2/" && printf 'epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n1,0.5,x\n' >"$T/bad2/history.csv"
"$G" report "$T/bad2" >"$T/out" 2>"$T/err"; rc=$?
if clean_fail $rc "$T/err" "bad2/history.csv: line 2" && ! [ -e "$T/bad2/index.html" ]; then pass report_bad_history
else fail report_bad_history "rc=$rc $(cat "$T/err")"; fi
mkdir -p "$T/bad3" && "$PY" -c "
import json; r = json.load(open('$R/run.json')); r['eval']['confusion'][3] = [1, 2]
json.dump(r, open('$T/bad3/run.json', 'w'))"
"$G" report "$T/bad3" >"$T/out" 2>"$T/err"; rc=$?
if clean_fail $rc "$T/err" "bad3/run.json: eval.confusion row 3"; then pass report_bad_confusion
else fail report_bad_confusion "rc=$rc $(cat "$T/err")"; fi
: >"$T/afile"
"$G" "${TRAIN[@]}" --out "$T/m2.gft" --report "$T/afile" >"$T/out" 2>"$T/err"; rc=$?
if clean_fail $rc "$T/err" "afile" && ! [ -e "$T/m2.gft" ] && ! has "$T/out" "^Epoch"; then pass report_dir_is_a_file
else fail report_dir_is_a_file "rc=$rc $(cat "$T/err")"; fi
"$G" "${TRAIN[@]}" --out "$T/m2.gft" --tensorboard "$T/afile/tb" >"$T/out" 2>"$T/err"; rc=$?
if clean_fail $rc "$T/err" "afile" && ! [ -e "$T/m2.gft" ]; then pass report_tensorboard_dir_bad
else fail report_tensorboard_dir_bad "rc=$rc $(cat "$T/err")"; fi
"$G" report >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 2 ] && has "$T/err" "usage: graft report"; then pass report_usage; else fail report_usage "rc=$rc"; fi

# ---- --json: one JSON event per line on stdout, the epochs equal the CSV log
"$G" "${TRAIN[@]}" --out "$T/m3.gft" --log "$T/log3.csv" --json >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && "$PY" - "$T/out" "$T/log3.csv" <<'EOF2'
import csv, json, math, sys
ev = [json.loads(l) for l in open(sys.argv[1])]          # every line is one JSON object
rows = list(csv.DictReader(open(sys.argv[2])))
ep = [e for e in ev if e["event"] == "epoch"]
assert [e["epoch"] for e in ep] == [int(r["epoch"]) for r in rows] and all(e["epochs"] == 3 for e in ep), ep
for e, r in zip(ep, rows):
    for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert abs(e[k] - float(r[k])) <= 1e-6 + 1e-5 * abs(float(r[k])), (k, e[k], r[k])
    assert e["images_per_second"] > 0
assert [e["event"] for e in ev[len(ep):]] == ["saved", "test", "result"], ev[len(ep):]
te = ev[-2]
assert 0 <= te["accuracy"] <= 1 and math.isfinite(te["loss"])
assert ev[-1]["epochs"] == 3 and abs(ev[-1]["test_accuracy"] - te["accuracy"]) < 1e-6, ev[-1]
EOF2
then pass report_json_progress; else fail report_json_progress "rc=$rc $(head -c 600 "$T/out") $(cat "$T/err")"; fi

# ---- fine-tuning: the layers table says which layers trained at which rate
"$G" "${TRAIN[@]}" --epochs 1 --unfreeze 2 --base-lr-mult 0.1 --out "$T/m4.gft" --report "$T/ft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && "$PY" - "$T/ft" <<'EOF2'
import json, sys
sys.path.insert(0, "tests/fixtures")
from report_check import table_rows
r = json.load(open(sys.argv[1] + "/run.json"))
lay = {l["name"]: l for l in r["model"]["layers"]}
assert r["model"]["cut"] == "3", r["model"]["cut"]                       # the base still ends at 3
assert all(lay[n]["frozen"] for n in ("0/conv", "0/bn", "0", "1")), lay
assert abs(lay["2/conv"]["lr_mult"] - 0.1) < 1e-7 and abs(lay["2/bn"]["lr_mult"] - 0.1) < 1e-7 and lay["dense"]["lr_mult"] == 1
rate = {row[0]: row[4] for row in table_rows(sys.argv[1] + "/index.html", "layers")}
assert rate["0/conv"] == "frozen" and rate["2/conv"] == "lr 3e-05 (\u00d7 0.1)" and rate["dense"] == "lr 0.0003 (\u00d7 1)", rate
EOF2
then pass report_finetune_rates; else fail report_finetune_rates "rc=$rc $(tail -3 "$T/err")"; fi

# ---- --cut auto: the probe table on the page is the one train printed
"$G" "${TRAIN[@]}" --epochs 1 --cut auto --out "$T/m5.gft" --report "$T/probe" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && "$PY" - "$T/probe" "$T/out" <<'EOF2'
import re, sys
sys.path.insert(0, "tests/fixtures")
from report_check import table_rows
printed = {}
for line in open(sys.argv[2]):
    m = re.match(r"^  (\S+)\s+(\d+x\d+x\d+)\s+(\w+)\s+ridge ([0-9.]+)\s+LogME\s+(-?[0-9.]+)(  <- chosen)?$", line)
    if m: printed[m.group(1)] = (m.group(2), m.group(3), float(m.group(4)), float(m.group(5)), bool(m.group(6)))
assert printed, "train printed no probe table"
page = {r[0]: r for r in table_rows(sys.argv[1] + "/index.html", "probe")}
assert sorted(page) == sorted(printed), (sorted(page), sorted(printed))
for name, (shape, form, ridge, logme, chosen) in printed.items():
    r = page[name]
    assert r[1] == shape and r[2] == form and abs(float(r[4]) - ridge) <= 5.1e-5, (r, printed[name])
    assert abs(float(r[5]) - logme) <= 5.1e-5 and (r[6] == "chosen") == chosen, (r, printed[name])
EOF2
then pass report_probe_table; else fail report_probe_table "rc=$rc $(tail -3 "$T/err")"; fi

# ---- early stopping: the page says so (the epochs row, the note under the
# history table, whose highlighted row is the best epoch the log names)
"$G" "${TRAIN[@]}" --epochs 40 --patience 2 --out "$T/m6.gft" --report "$T/es" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "^early stopping: no improvement for 2 epochs" && "$PY" - "$T/es" "$T/out" <<'EOF2'
import re, sys
sys.path.insert(0, "tests/fixtures")
from report_check import table_rows
page = open(sys.argv[1] + "/index.html").read()
hist = table_rows(sys.argv[1] + "/index.html", "history")
best = int(re.search(r"^best epoch: (\d+) ", open(sys.argv[2]).read(), re.M).group(1))
n = len(hist)            # (the rows under the header)
assert n < 40 and best < n, (n, best)
assert re.search(r"<th>epochs</th><td>%d of 40 \(early stopping\)</td>" % n, page), "epochs row"
assert "training stopped early after it" in page
assert re.search(r"<tr class=best><td class=n>%d</td>" % best, page), "best row"
EOF2
then pass report_early_stopping; else fail report_early_stopping "rc=$rc $(tail -n 3 "$T/out" "$T/err")"; fi
