#!/usr/bin/env bash
# test_cli_predict.sh — `graft predict` and `graft extract` end to end:
#   predict --model (a model trained here on tests/fixtures/gen_cli.py data)
#   on PNG/JPEG images: top-k with class names, --json objects, a corrupt
#   image reported while the others are still classified (exit 1);
#   predict --base with the real Tiny Darknet on bird.bmp -> chickadee
#   (SKIP without ../shared/data); extract: a .npy numpy loads with the shape
#   `graft info --base` gives for the layer, finite, and equal to the
#   predict path's probabilities for a whole classifier; clean failures that
#   leave no temp file and keep an existing output.
set -u
. "$(dirname "$0")/lib.sh"

need_numpy_pil cli_predict "to make the test data"
mkdir -p "$T/img"
"$PY" "$GEN" cifar "$T/train.bin" 200 1 && "$PY" "$GEN" images "$T/img" \
  || { echo "FAIL cli_predict_setup: gen_cli.py"; exit 1; }
# base: conv+bn+leaky+maxpool x2; cls: a whole (random) classifier ending in softmax
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"   # conv+bn+leaky+maxpool x2
{ sed -n '1,/^\[maxpool\]/p' "$T/tiny.cfg"; printf 'size=2\nstride=2\n\n[convolutional]\nfilters=10\nsize=1\nstride=1\npad=1\nactivation=linear\n\n[avgpool]\n\n[softmax]\ngroups=1\n'; } >"$T/cls.cfg"

"$G" train --base "darknet:$T/tiny.cfg" --weights none --head flatten,dense:10:softmax --data "$T/train.bin" \
  --epochs 4 -q --out "$T/m.gft" 2>"$T/err" || { echo "FAIL cli_predict_setup: train: $(cat "$T/err")"; exit 1; }

# ---- predict --model: top-k with class names; the bad image reported, the rest printed, exit 1
I=("$T/img/c0.png" "$T/img/bad.png" "$T/img/c3.jpg" "$T/img/c7.png")
"$G" predict --model "$T/m.gft" --top 3 "${I[@]}" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 1 ] && [ "$(grep -c "^$T/img/" "$T/out")" -eq 3 ] && ! grep -q "bad.png" "$T/out" \
   && [ "$(grep -cE '^ +[0-9]+\.[0-9]{2}%  (airplane|automobile|bird|cat|deer|dog|frog|horse|ship|truck) \([0-9]\)$' "$T/out")" -eq 9 ] \
   && [ "$(grep -c . "$T/err")" -eq 1 ] && has "$T/err" "^graft: error: $T/img/bad.png: " \
   && ! has "$T/err" "Sanitizer|runtime error"; then
  pass predict_model_topk
else fail predict_model_topk "rc=$rc $(cat "$T/out" "$T/err")"; fi
# the pattern the model learned: c0 -> airplane, c3 (a 48x40 JPEG, resized) -> cat, c7 -> horse
if [ "$(sed -n "\|^$T/img/c0.png|{n;p}" "$T/out")" != "" ] \
   && sed -n "\|^$T/img/c0.png|{n;p}" "$T/out" | grep -q " airplane (0)" \
   && sed -n "\|^$T/img/c3.jpg|{n;p}" "$T/out" | grep -q " cat (3)" \
   && sed -n "\|^$T/img/c7.png|{n;p}" "$T/out" | grep -q " horse (7)"; then
  pass predict_model_top1
else fail predict_model_top1 "$(cat "$T/out")"; fi

"$G" predict --model "$T/m.gft" --json "${I[@]}" >"$T/out.json" 2>"$T/err"; rc=$?
if [ $rc -eq 1 ] && has "$T/err" "^graft: error: $T/img/bad.png: " && "$PY" - "$T/out.json" "$T/img" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
objs = [json.loads(l) for l in lines]
assert [o["image"] for o in objs] == [sys.argv[2] + "/" + f for f in ("c0.png", "c3.jpg", "c7.png")], objs
names = "airplane automobile bird cat deer dog frog horse ship truck".split()
for o in objs:
    top = o["top"]
    assert len(top) == 5 and set(o) == {"image", "top"}
    assert all(set(t) == {"index", "label", "prob"} and t["label"] == names[t["index"]] for t in top)
    p = [t["prob"] for t in top]
    assert p == sorted(p, reverse=True) and 0 <= p[-1] and sum(p) <= 1 + 1e-5, p
    assert len({t["index"] for t in top}) == 5
assert [o["top"][0]["index"] for o in objs] == [0, 3, 7]
EOF
then pass predict_model_json
else fail predict_model_json "rc=$rc $(cat "$T/out.json" "$T/err")"; fi

try() {  # $1 = name, rest = graft arguments; expects a clean failure
  local name=$1; shift
  "$G" "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if clean_fail $rc "$T/err"; then pass "$name"; else fail "$name" "rc=$rc $(head -c 800 "$T/err")"; fi
}
try predict_missing_image predict --model "$T/m.gft" "$T/img/none.png"
grep -q "$T/img/none.png" "$T/err" || fail predict_missing_image_msg "$(cat "$T/err")"
try predict_no_images predict --model "$T/m.gft"
try predict_bad_top predict --model "$T/m.gft" --top 0 "$T/img/c0.png"
try predict_no_model predict "$T/img/c0.png"
try predict_model_not_a_model predict --model "$T/tiny.cfg" "$T/img/c0.png"
try predict_missing_labels predict --base "darknet:$T/cls.cfg" --labels "$T/none.txt" "$T/img/c0.png"

# ---- extract: shape = what `graft info --base` says, finite, numpy-readable
"$G" info --base "darknet:$T/tiny.cfg" >"$T/info" 2>&1
want=$(sed -nE 's/^[0-9]+ +3 +max_pooling2d +\(None, ([0-9]+), ([0-9]+), ([0-9]+)\).*/\1 \2 \3/p' "$T/info")
"$G" extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --layer 3 --batch 48 \
  --out "$T/f.npy" >"$T/out" 2>"$T/err"; rc=$?
got=$("$PY" "$GEN" npy "$T/f.npy" 200 ${want:-0 0 0} 2>&1)
if [ $rc -eq 0 ] && [ "$want" = "8 8 16" ] && [[ "$got" == ok* ]] && has "$T/out" "^$T/f.npy: 200 x 8 x 8 x 16 float32" \
   && [ -z "$(ls "$T" | grep -F '.tmp')" ]; then
  pass extract_shape_matches_info
else fail extract_shape_matches_info "rc=$rc info '$want' numpy '$got' $(cat "$T/out" "$T/err")"; fi

# values: the whole random classifier through extract (a CSV list, batch 2) and
# through predict --json (one image at a time) give the same probabilities
printf 'path,label\nimg/c0.png,0\nimg/c3.jpg,3\nimg/c7.png,7\n' >"$T/list.csv"
"$G" extract --base "darknet:$T/cls.cfg" --weights none --data "$T/list.csv" --input-size 32x32 --layer 4 \
  --batch 2 --out "$T/p.npy" >"$T/out" 2>"$T/err"; rc=$?
"$G" predict --base "darknet:$T/cls.cfg" --weights none --json --top 10 "$T/img/c0.png" "$T/img/c3.jpg" \
  "$T/img/c7.png" >"$T/pred.json" 2>>"$T/err"; rc2=$?
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && "$PY" - "$T/p.npy" "$T/pred.json" <<'EOF'
import json, sys
import numpy as np
a = np.load(sys.argv[1])
assert a.shape == (3, 1, 1, 10) and a.dtype == np.float32 and np.isfinite(a).all(), a.shape
a = a.reshape(3, 10)
assert np.allclose(a.sum(1), 1, atol=1e-5) and a.std() > 1e-3, a
for row, line in zip(a, open(sys.argv[2])):
    p = np.zeros(10)
    for t in json.loads(line)["top"]:
        p[t["index"]] = t["prob"]
    assert np.abs(row - p).max() < 2e-6, (row, p)   # predict prints 6 decimals
EOF
then pass extract_equals_predict
else fail extract_equals_predict "rc=$rc/$rc2 $(cat "$T/out" "$T/err" "$T/pred.json")"; fi

# failures: no output, no temp file left, an existing output kept
try extract_out_missing_dir extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --layer 3 \
  --out "$T/nodir/f.npy"
grep -q "$T/nodir/f.npy" "$T/err" || fail extract_out_missing_dir_msg "$(cat "$T/err")"
mkdir "$T/adir"
try extract_out_is_directory extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --layer 3 \
  --out "$T/adir"
cp "$T/p.npy" "$T/keep.npy"
printf 'path,label\nimg/c0.png,0\nimg/bad.png,1\nimg/c7.png,7\n' >"$T/badlist.csv"
try extract_bad_image extract --base "darknet:$T/cls.cfg" --weights none --data "$T/badlist.csv" --input-size 32x32 \
  --layer 4 --batch 1 --out "$T/keep.npy"
grep -q "bad.png" "$T/err" || fail extract_bad_image_msg "$(cat "$T/err")"
if cmp -s "$T/keep.npy" "$T/p.npy"; then pass extract_failure_keeps_out; else fail extract_failure_keeps_out "keep.npy changed"; fi
try extract_unknown_layer extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --layer nope \
  --out "$T/x.npy"
try extract_missing_data extract --base "darknet:$T/tiny.cfg" --weights none --data "$T/none.bin" --layer 3 \
  --out "$T/x.npy"
left=$(ls -A "$T" "$T/adir" | grep -E '\.tmp|^x\.npy$')
if [ -z "$left" ] && [ -z "$(ls -A "$T/adir")" ]; then pass extract_failures_leave_no_files; else fail extract_failures_leave_no_files "$left"; fi

# ---- the real Tiny Darknet (pretrained) on a real photo
TD="$DATA/weights/darknet-tiny"
if [ -f "$TD/tiny.cfg" ] && [ -f "$TD/tiny.weights" ] && [ -f "$DATA/images/bird.bmp" ]; then
  "$G" predict --base "darknet:$TD/tiny.cfg" --weights "$TD/tiny.weights" --labels "$TD/imagenet1k.shortnames.txt" \
    --top 3 "$DATA/images/bird.bmp" >"$T/out" 2>"$T/err"; rc=$?
  if [ $rc -eq 0 ] && sed -n 1p "$T/out" | grep -qE "^weights: $TD/tiny.weights: 31 of 31 layers loaded$" \
     && sed -n 3p "$T/out" | grep -qE '^ +[0-9.]+%  chickadee \([0-9]+\)$'; then
    pass predict_tiny_darknet_bird
  else fail predict_tiny_darknet_bird "rc=$rc $(cat "$T/out" "$T/err")"; fi
else
  echo "SKIP predict_tiny_darknet_bird: $TD/tiny.cfg, tiny.weights or $DATA/images/bird.bmp not found"
fi
