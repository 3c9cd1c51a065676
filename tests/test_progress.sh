#!/usr/bin/env bash
# test_progress.sh — live progress as a person reads it.  On a terminal (a
# real pseudo-terminal: tests/fixtures/pty_run.py) `graft eval`, `graft probe`
# and `graft train` redraw one progress line in place ("\r...\033[K") with a
# rate and an ETA, fitted to the window's width, also after the window is
# resized (the bar shrinks, the line never wraps); ^C ends the line and
# prints the --resume command; --quiet draws nothing.  In a log file there is
# no "\r" at all, and the number of lines does not depend on the number of
# batches (one line per epoch or phase).  No timing is asserted.
set -u
. "$(dirname "$0")/lib.sh"
PTY=tests/fixtures/pty_run.py
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$PWD/tests/lsan-fontconfig.supp"

need_numpy_pil progress
"$PY" "$GEN" cifar "$T/train.bin" 300 1 && "$PY" "$GEN" cifar "$T/test.bin" 100 2 \
  || { echo "FAIL progress_setup: gen_cli.py"; exit 1; }
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"
TRAIN=(train --base "darknet:$T/tiny.cfg" --weights none --head flatten,dense:10:softmax
       --data "$T/train.bin" --val-split 0.2 --lr 0.0003)
"$G" "${TRAIN[@]}" --epochs 1 --out "$T/m.gft" -q >"$T/out" 2>&1 || { echo "FAIL progress_setup: $(tail -3 "$T/out")"; exit 1; }

# check.py CAPTURE [key=value...]: the progress segments of a terminal capture
# ("\r" TEXT "\033[K") checked against the expectations given.
cat >"$T/check.py" <<'EOF'
import re, sys
raw = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
kw = dict(a.split("=", 1) for a in sys.argv[2:])
segs = [s for s in re.findall(r"\r([^\r\n]*?)\x1b\[K", raw) if s]
def render(raw):   # the screen's lines: "\r" to column 0, "\033[K" clears to the end, "\n"
    lines, col, i = [""], 0, 0
    while i < len(raw):
        if raw.startswith("\x1b[K", i):
            lines[-1] = lines[-1][:col]; i += 3; continue
        c = raw[i]
        if c == "\r": col = 0
        elif c == "\n": lines.append(""); col = 0
        else:
            l = lines[-1]; lines[-1] = l[:col] + c + l[col + 1:]; col += 1
        i += 1
    return "\n".join(lines)
screen = render(raw)
def cols(s): return len(s)
def bar(s):
    m = re.search(r"\[([=>.]+)\]", s)
    return len(m.group(1)) if m else 0
if "segments" in kw:
    assert len(segs) >= int(kw["segments"]), "only %d progress segments: %r" % (len(segs), raw[:800])
if "match" in kw:
    bad = [s for s in segs if not re.fullmatch(kw["match"], s)]
    assert not bad, "segments not like %s: %r" % (kw["match"], bad[:3])
if "width" in kw:
    wide = [s for s in segs if cols(s) > int(kw["width"]) - 1]
    assert not wide, "segments wider than %s - 1 columns: %r" % (kw["width"], wide[:3])
if "none" in kw:
    assert not segs and "\x1b[K" not in raw, "progress drawn: %r" % segs[:3]
if "line" in kw:
    assert re.search(kw["line"], screen, re.M), "no line like %s on the screen %r" % (kw["line"], screen[-800:])
if "noline" in kw:                     # a progress line replaced by the next line of the report
    assert not re.search(kw["noline"], screen, re.M), "left on the screen: %s in %r" % (kw["noline"], screen[-800:])
if "resized" in kw:                    # DRAWS:COLS: the redraws before the resize, the new width
    d, c = map(int, kw["resized"].split(":"))
    before, last = segs[0], segs[-1]
    assert bar(before) == 30 and cols(before) > c - 1, "before the resize: %r" % before
    assert cols(last) <= c - 1 and 8 <= bar(last) < 30 and "ETA:" in last, "after the resize: %r" % last
print("%d segments" % len(segs))
EOF
check() { "$PY" "$T/check.py" "$@" 2>&1; }

# ---- eval on a terminal: "eval: N/M images, R img/s, ETA Ss" in place, then one line in its place
out=$("$PY" "$PTY" --cols 60 "$T/eval.tty" "$G" eval --model "$T/m.gft" --data "$T/test.bin" --batch 4)
if [ "$out" != "${out#exit 0}" ] && r=$(check "$T/eval.tty" segments=1 width=60 \
     'match=eval: \d+/100 images, \d+ img/s, ETA \d+s' 'line=^graft: eval: 100 images in [0-9.]+s \(\d+ img/s\)$' \
     'line=^Test accuracy: ' 'noline=^eval: '); then
  pass "progress_eval_tty ($r)"
else fail progress_eval_tty "$out $r"; fi

# ---- a narrow window: the line is cut at a field boundary, never wraps
out=$("$PY" "$PTY" --cols 24 "$T/eval24.tty" "$G" eval --model "$T/m.gft" --data "$T/test.bin" --batch 4)
if [ "$out" != "${out#exit 0}" ] && r=$(check "$T/eval24.tty" segments=1 width=24 'match=eval: \d+/100 images'); then
  pass "progress_eval_narrow ($r)"
else fail progress_eval_narrow "$out $r"; fi

# ---- an error in the middle of the pass: the progress line stays, the error
# starts a line of its own
"$PY" "$GEN" folder "$T/fold" 12 3 >/dev/null && head -c 100 "$T/fold/green/00.png" >"$T/fold/green/99.png" \
  || echo "FAIL progress_setup: folder"
"$G" train --base "darknet:$T/tiny.cfg" --weights none --head flatten,dense:3:softmax --data "$T/fold" --epochs 1 \
  --out "$T/f.gft" -q --skip-bad >"$T/out" 2>&1 || echo "FAIL progress_setup: $(tail -3 "$T/out")"
out=$("$PY" "$PTY" --cols 80 "$T/bad.tty" "$G" eval --model "$T/f.gft" --data "$T/fold" --batch 4)
if [ "$out" != "${out#exit 1}" ] && r=$(check "$T/bad.tty" segments=1 'line=^eval: \d+/37 images' \
     'line=^graft: error: .*99\.png: corrupt PNG'); then
  pass progress_error_own_line
else fail progress_error_own_line "$out $r"; fi

# ---- --quiet on a terminal: no progress
out=$("$PY" "$PTY" "$T/evalq.tty" "$G" eval --model "$T/m.gft" --data "$T/test.bin" --batch 4 --quiet)
if [ "$out" != "${out#exit 0}" ] && r=$(check "$T/evalq.tty" none=1 'line=^Test accuracy: '); then
  pass progress_eval_quiet_tty
else fail progress_eval_quiet_tty "$out $r"; fi

# ---- eval into a log file: no "\r", one line on stderr whatever the number of batches
"$G" eval --model "$T/m.gft" --data "$T/test.bin" --batch 4 >"$T/ev4.out" 2>"$T/ev4.err"; rc4=$?
"$G" eval --model "$T/m.gft" --data "$T/test.bin" --batch 50 >"$T/ev50.out" 2>"$T/ev50.err"; rc50=$?
if [ $rc4 -eq 0 ] && [ $rc50 -eq 0 ] && ! grep -q $'\r' "$T"/ev4.* "$T"/ev50.* \
   && [ "$(wc -l <"$T/ev4.err")" -eq 1 ] && [ "$(wc -l <"$T/ev50.err")" -eq 1 ] \
   && has "$T/ev4.err" '^graft: eval: 100 images in [0-9.]+s \([0-9]+ img/s\)$' && clean "$T/ev4.err"; then
  pass progress_eval_log
else fail progress_eval_log "rc=$rc4/$rc50 $(cat -A "$T/ev4.err" | head -5)"; fi

# ---- probe on a terminal: the features pass with a rate and an ETA
out=$("$PY" "$PTY" --cols 80 "$T/probe.tty" "$G" probe --base "darknet:$T/tiny.cfg" --weights none \
      --data "$T/train.bin" --samples 200 --batch 4)
if [ "$out" != "${out#exit 0}" ] && r=$(check "$T/probe.tty" segments=1 width=80 \
     'match=probe: features \d+/200 images, \d+ img/s, ETA \d+s' \
     'line=^graft: probe: features of 200 images at 2 cuts in [0-9.]+s \(\d+ img/s\)' \
     "line=^graft: probe: scoring cut 2/2 '3' \(8x8x16\); 1 scored in [0-9.]+s, ETA ~\d+s$"); then
  pass "progress_probe_tty ($r)"
else fail progress_probe_tty "$out $r"; fi
for b in 4 50; do
  "$G" probe --base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --samples 200 --batch $b \
    >"$T/pr$b.log" 2>&1 || echo "probe --batch $b failed" >>"$T/pr$b.log"
done
if ! grep -q $'\r' "$T"/pr4.log && [ "$(wc -l <"$T/pr4.log")" -eq "$(wc -l <"$T/pr50.log")" ] \
   && has "$T/pr4.log" '^recommendation: ' && clean "$T/pr4.log"; then
  pass "progress_probe_log ($(wc -l <"$T/pr4.log") lines)"
else fail progress_probe_log "$(head -c 600 "$T/pr4.log")"; fi

# ---- train on a terminal: Keras' bar; the window shrinks from 100 to 50
# columns during the run, the bar shrinks with it; ^C ends the line and
# prints the --resume command (a run of 1000 epochs: it is still going)
out=$("$PY" "$PTY" --cols 100 --resize 3:50 --intr 3 "$T/train.tty" "$G" "${TRAIN[@]}" --epochs 1000 --batch 4 \
      --out "$T/m2.gft")
if [ "$out" != "${out#exit 130}" ] && r=$(check "$T/train.tty" segments=6 width=100 resized=3:50 \
     'match=Epoch \d+/1000 \d+/60 \[[=>.]+\] - ETA: .*' \
     'line=^Epoch \d+/1000 .*\^C$' "line=^graft: continue with: graft train --resume '?$T/m2.gft.ckpt'?$"); then
  pass "progress_train_tty_resize_intr ($r)"
else fail progress_train_tty_resize_intr "$out $r"; fi

# ---- train into a log file: no "\r"; as many lines with 4 times the batches; stdout's
# and stderr's lines in the order they were written (saved, the test pass, its score)
"$G" "${TRAIN[@]}" --epochs 3 --batch 32 --test "$T/test.bin" --out "$T/m3.gft" >"$T/tr32.log" 2>&1; rc32=$?
"$G" "${TRAIN[@]}" --epochs 3 --batch 8 --test "$T/test.bin" --out "$T/m4.gft" >"$T/tr8.log" 2>&1; rc8=$?
n32=$(wc -l <"$T/tr32.log"); n8=$(wc -l <"$T/tr8.log")
if [ $rc32 -eq 0 ] && [ $rc8 -eq 0 ] && ! grep -q $'\r' "$T/tr32.log" "$T/tr8.log" && [ "$n32" -eq "$n8" ] \
   && [ "$(grep -c '^Epoch [0-9]/3 ' "$T/tr8.log")" -eq 3 ] && has "$T/tr8.log" '^graft: test: 100 images in ' \
   && [ "$(grep -oE '^(saved|graft: test|Test loss)' "$T/tr8.log" | tr '\n' '|')" = "saved|graft: test|Test loss|" ] \
   && clean "$T/tr8.log"; then
  pass "progress_train_log ($n8 lines)"
else fail progress_train_log "rc=$rc32/$rc8 lines $n32/$n8 $(tail -5 "$T/tr8.log")"; fi
