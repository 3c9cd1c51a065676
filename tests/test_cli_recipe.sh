#!/usr/bin/env bash
# test_cli_recipe.sh — the input recipe belongs to the weights (issue 12):
#   - the real Tiny Darknet through `graft predict` answers what `darknet
#     classifier predict` answers on ../shared/data/images: same top-1 and
#     top-5 labels, top-1 probability within 1 point (oracle: the committed
#     tests/fixtures/darknet_classify/tiny.txt, made by
#     tests/fixtures/gen_darknet_classify.sh from Debian's darknet; SKIP
#     without ../shared/data);
#   - `--crop` used in training is saved in the model, and predict and eval
#     apply it: their answer on an image equals their answer on PIL's crop of
#     the centered box (the independent oracle of the box), and differs from
#     the stretched image's; explicit options override the saved recipe;
#   - a model file without the recipe fields (older graft) loads as stretch
#     + bilinear; `graft info` shows the recipe of a base and of a model;
#   - the shared data options: folders default to the base's input size;
#     files that are not images are counted and reported; a CSV with a UTF-8
#     byte-order mark is read.
set -u
. "$(dirname "$0")/lib.sh"

# ---- 1. darknet classify parity on the real Tiny Darknet
FIX=tests/fixtures/darknet_classify/tiny.txt
W=$DATA/weights/darknet-tiny
if [ ! -f "$W/tiny.cfg" ] || [ ! -f "$W/tiny.weights" ] || [ ! -d "$DATA/images" ]; then
  echo "SKIP recipe_darknet_classify: $DATA (the real Tiny Darknet and photos) is absent"
else
  imgs=()
  for n in $(cut -f1 "$FIX" | sort -u); do imgs+=("$DATA/images/$n"); done
  "$G" predict --base "darknet:$W/tiny.cfg" --weights "$W/tiny.weights" --labels "$W/imagenet1k.shortnames.txt" \
    --json "${imgs[@]}" >"$T/dk.json" 2>"$T/err"; rc=$?
  if [ $rc -eq 0 ] && clean "$T/err" && "$PY" - "$T/dk.json" "$FIX" <<'EOF'
import json, os, sys
want = {}
for line in open(sys.argv[2]):
    img, rank, pct, label = line.rstrip("\n").split("\t")
    want.setdefault(img, []).append((label, float(pct)))
bad = []
for line in open(sys.argv[1]):
    o = json.loads(line)
    img = os.path.basename(o["image"])
    got = [(t["label"], 100 * t["prob"]) for t in o["top"]]
    w = want.pop(img)
    if [g[0] for g in got] != [x[0] for x in w]:
        bad.append("%s: top-5 %s, darknet %s" % (img, [g[0] for g in got], [x[0] for x in w]))
    elif abs(got[0][1] - w[0][1]) > 1.0:
        bad.append("%s: top-1 %.2f%%, darknet %.2f%%" % (img, got[0][1], w[0][1]))
    else:
        print("  %-18s %-20s graft %6.2f%%  darknet %6.2f%%" % (img, got[0][0], got[0][1], w[0][1]))
if want: bad.append("not answered: %s" % sorted(want))
if bad:
    print("\n".join(bad)); sys.exit(1)
EOF
  then pass recipe_darknet_classify
  else fail recipe_darknet_classify "rc=$rc $(cat "$T/err")"; fi
  # the fetched-name spelling an error suggests works, and shows the recipe
  GRAFT_MIRROR=$DATA GRAFT_HOME=$T/home "$G" info --base tiny-darknet >"$T/out" 2>"$T/err"; rc=$?
  if [ $rc -eq 0 ] && has "$T/out" "^input recipe: resize letterbox, darknet interpolation, darknet normalization"; then
    pass recipe_info_tiny_darknet
  else fail recipe_info_tiny_darknet "rc=$rc $(tail -3 "$T/out") $(cat "$T/err")"; fi
fi

if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy, PIL' 2>/dev/null; then
  echo "SKIP recipe_crop: /usr/bin/python3 with numpy and PIL is needed to make the test data"
  exit 0
fi

# ---- 2. --crop saved in the model; predict and eval apply it
# two classes of 48x40 images: a colour plus a horizontal ramp whose ends the
# crop cuts off; F/ the images, FC/ PIL's crop of the centered 40x40 box
"$PY" - "$T" <<'EOF'
import os, sys
import numpy as np
from PIL import Image
t = sys.argv[1]
rng = np.random.default_rng(3)
for d in ("F", "FC"):
    for c in ("a", "b"):
        os.makedirs(os.path.join(t, d, c), exist_ok=True)
for c, col in (("a", (200, 60, 60)), ("b", (60, 60, 200))):
    for i in range(12):
        x = np.empty((40, 48, 3), np.float32)
        x[:] = col
        x[:, :4] = 255 * (i % 2)          # edges the crop removes
        x[:, 44:] = 255 * ((i + 1) % 2)
        x += np.linspace(-40, 40, 48)[None, :, None] + rng.normal(0, 10, x.shape)
        im = Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))
        im.save(os.path.join(t, "F", c, "%02d.png" % i))
        # Keras smart_resize's box for 48x40 -> 32x32: 40x40 at x = 4
        im.crop((4, 0, 44, 40)).save(os.path.join(t, "FC", c, "%02d.png" % i))
EOF
CFG=tests/fixtures/cli/tiny.cfg
"$G" train --base "darknet:$CFG" --weights none --data "$T/F" --input-size 32x32 --crop --head flatten,dense:2:softmax \
  --epochs 1 --lr 0.001 -q --out "$T/m.gft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && "$PY" - "$T/m.gft" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
a = json.loads(json.loads(b[8:8 + n])["__metadata__"]["graft.architecture"])
ok = a["resize"] == "crop" and a["interpolation"] == "darknet" and a["preprocess"] == "darknet" \
     and a["crop_fraction"] == 1
print(a["resize"], a["interpolation"], a["preprocess"], a["crop_fraction"])
sys.exit(0 if ok else 1)
EOF
then pass recipe_crop_saved
else fail recipe_crop_saved "rc=$rc $(cat "$T/err")"; fi

"$G" info "$T/m.gft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "^input recipe: resize crop \(fraction 1\), darknet interpolation, darknet normalization"; then
  pass recipe_info_model
else fail recipe_info_model "rc=$rc $(grep -i recipe "$T/out") $(cat "$T/err")"; fi

probs() {  # $@ = predict args; prints "image prob0 prob1" per image, sorted by class index
  "$G" predict --top 2 --json "$@" 2>>"$T/err" | "$PY" -c '
import json, os, sys
for l in sys.stdin:
    o = json.loads(l); p = sorted((t["index"], t["prob"]) for t in o["top"])
    print(os.path.basename(os.path.dirname(o["image"])) + "/" + os.path.basename(o["image"]), *["%.6f" % q for _, q in p])'
}
same() {  # $1, $2: files of probs; $3: max |diff| allowed
  "$PY" - "$1" "$2" "$3" <<'EOF'
import sys
a = [l.split() for l in open(sys.argv[1])]; b = [l.split() for l in open(sys.argv[2])]
if len(a) != len(b) or not a: sys.exit(2)
d = max(abs(float(x) - float(y)) for la, lb in zip(a, b) for x, y in zip(la[1:], lb[1:]))
print("max |diff| %.2g" % d)
sys.exit(0 if d <= float(sys.argv[3]) else 1)
EOF
}
: >"$T/err"
probs --model "$T/m.gft" "$T"/F/a/0[0-5].png "$T"/F/b/0[0-5].png >"$T/p.crop"
probs --model "$T/m.gft" "$T"/FC/a/0[0-5].png "$T"/FC/b/0[0-5].png >"$T/p.pil"
probs --model "$T/m.gft" --resize stretch "$T"/F/a/0[0-5].png "$T"/F/b/0[0-5].png >"$T/p.stretch"
if same "$T/p.crop" "$T/p.pil" 2e-6 >"$T/d1" && ! same "$T/p.crop" "$T/p.stretch" 1e-5 >"$T/d2" \
   && [ "$(wc -l <"$T/p.crop")" -eq 12 ] && clean "$T/err"; then
  pass recipe_predict_applies_crop
else fail recipe_predict_applies_crop "crop vs PIL crop: $(cat "$T/d1"); crop vs stretch: $(cat "$T/d2") $(cat "$T/err")"; fi

"$G" eval --model "$T/m.gft" --data "$T/F" --json >"$T/e.crop" 2>"$T/err"; r1=$?
"$G" eval --model "$T/m.gft" --data "$T/FC" --json >"$T/e.pil" 2>>"$T/err"; r2=$?
"$G" eval --model "$T/m.gft" --data "$T/F" --resize stretch --json >"$T/e.stretch" 2>>"$T/err"; r3=$?
if [ $r1$r2$r3 = 000 ] && "$PY" - "$T/e.crop" "$T/e.pil" "$T/e.stretch" <<'EOF'
import json, sys
c, p, s = (json.load(open(f)) for f in sys.argv[1:4])
print("loss crop %.6f, PIL crop %.6f, stretch %.6f" % (c["loss"], p["loss"], s["loss"]))
sys.exit(0 if abs(c["loss"] - p["loss"]) < 1e-5 and abs(c["loss"] - s["loss"]) > 1e-5 else 1)
EOF
then pass recipe_eval_applies_crop
else fail recipe_eval_applies_crop "rc=$r1$r2$r3 $(cat "$T/e.crop" "$T/e.pil" "$T/e.stretch" "$T/err")"; fi

# the features cache is keyed by the recipe: a --crop run after a stretch run on the same
# folder does not reuse the stretched features (it equals the run without the cache)
H=(--base "darknet:$CFG" --weights none --data "$T/F" --input-size 32x32 --head flatten,dense:2:softmax --epochs 2 -q)
GRAFT_HOME=$T/fc "$G" train "${H[@]}" --resize stretch --out "$T/k1.gft" 2>"$T/err" \
  && GRAFT_HOME=$T/fc "$G" train "${H[@]}" --crop --out "$T/k2.gft" 2>>"$T/err" \
  && GRAFT_HOME=$T/fc "$G" train "${H[@]}" --crop --no-cache --out "$T/k3.gft" 2>>"$T/err"; rc=$?
if [ $rc -eq 0 ] && cmp -s "$T/k2.gft" "$T/k3.gft" && ! cmp -s "$T/k1.gft" "$T/k2.gft"; then
  pass recipe_features_cache_key
else fail recipe_features_cache_key "rc=$rc $(cmp "$T/k2.gft" "$T/k3.gft" 2>&1) $(cat "$T/err")"; fi

# ---- 3. a model file from before the recipe fields: stretch + bilinear, as then
"$PY" - "$T/m.gft" "$T/old.gft" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
a = json.loads(h["__metadata__"]["graft.architecture"])
for k in ("resize", "interpolation", "crop_fraction"): del a[k]
h["__metadata__"]["graft.architecture"] = json.dumps(a)
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
EOF
: >"$T/err"
probs --model "$T/old.gft" "$T"/F/a/0[0-5].png >"$T/p.old"
probs --model "$T/m.gft" --resize stretch --interpolation bilinear "$T"/F/a/0[0-5].png >"$T/p.sb"
"$G" info "$T/old.gft" >"$T/out" 2>>"$T/err"
if same "$T/p.old" "$T/p.sb" 0 >"$T/d1" && has "$T/out" "^input recipe: resize stretch, bilinear interpolation, darknet" \
   && clean "$T/err"; then
  pass recipe_old_model_file
else fail recipe_old_model_file "$(cat "$T/d1") $(grep recipe "$T/out") $(cat "$T/err")"; fi

# ---- 4. shared data options
# a folder with no --input-size: the base's own size ([net] 32x32), not an error
"$G" extract --base "darknet:$CFG" --weights none --data "$T/F" --layer 1 --out "$T/f.npy" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && "$PY" -c "import numpy as np,sys; a=np.load('$T/f.npy'); sys.exit(0 if a.shape==(24,16,16,8) else 1)"; then
  pass data_folder_default_size
else fail data_folder_default_size "rc=$rc $(cat "$T/out" "$T/err")"; fi
# an empty .jpg and a GIF are counted and reported
cp -r "$T/F" "$T/G"
: >"$T/G/a/empty.jpg"
printf 'GIF89a\001\000\001\000\000\000\000;' >"$T/G/b/x.gif"
"$G" eval --model "$T/m.gft" --data "$T/G" --quiet >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/err" "^graft: warning: $T/G: ignored 2 files that are not JPEG, PNG or BMP images" && clean "$T/err"; then
  pass data_ignored_files_reported
else fail data_ignored_files_reported "rc=$rc $(cat "$T/err")"; fi
# a CSV written by Excel: UTF-8 byte-order mark before the header
{ printf '\357\273\277path,label\r\n'; for f in "$T"/F/a/*.png; do printf '%s,a\r\n' "$f"; done
  for f in "$T"/F/b/*.png; do printf '%s,b\r\n' "$f"; done; } >"$T/bom.csv"
"$G" eval --model "$T/m.gft" --data "$T/bom.csv" --json >"$T/e.csv" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && "$PY" - "$T/e.csv" "$T/e.crop" <<'EOF'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
sys.exit(0 if a["n"] == b["n"] == 24 and abs(a["loss"] - b["loss"]) < 1e-6 else 1)
EOF
then pass data_csv_bom
else fail data_csv_bom "rc=$rc $(cat "$T/e.csv" "$T/err")"; fi
