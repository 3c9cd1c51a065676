#!/usr/bin/env bash
# test_cli_norm.sh — free normalization values (--mean, --std, --pixel-scale,
# --channel-order; issue 14's preprocessing line).  Oracle: torchvision's
# ToTensor + Normalize then the net, in PyTorch (tests/fixtures/norm/expect.txt,
# made by tests/fixtures/gen_norm.py), and model files written by graft before
# free values (tests/fixtures/norm/old_*.gft and the answers that graft gave
# on them, old_predict.txt):
#   - `--preprocess torch` = `--mean 0.485,0.456,0.406 --std 0.229,0.224,0.225`,
#     bit for bit, and both = torchvision's logits; CLIP's and 0.5/0.5 values
#     given freely = torchvision's logits with those values (within 1e-5);
#   - ONNX metadata: graft.preprocess "custom" with arbitrary numbers, numbers
#     without graft.preprocess, flags overriding them; bad stored values refused;
#   - a model trained with free values keeps them (graft info, predict, eval),
#     exports them to ONNX metadata and reads them back;
#   - older model files load and answer what they answered;
#   - bad flag values and corrupt stored values give clear errors.
set -u
. "$(dirname "$0")/lib.sh"
FX=tests/fixtures/norm
IMG=$FX/img.png
TORCH="--mean 0.485,0.456,0.406 --std 0.229,0.224,0.225"
CLIP="--mean 0.48145466,0.4578275,0.40821073 --std 0.26862954,0.26130258,0.27577711"
HALF="--mean 0.5,0.5,0.5 --std 0.5,0.5,0.5"

# scores of a predict --json line, by index, against a case's torchvision logits
near_expect() {  # $1 = predict json file, $2 = case, [$3 = tolerance]
  "$PY" - "$1" "$FX/expect.txt" "$2" "${3:-1e-5}" <<'PYEOF'
import json, sys
o = json.loads(open(sys.argv[1]).readline())
got = {t["index"]: t["score"] for t in o["top"]}
for line in open(sys.argv[2]):
    name, what, *v = line.split()
    if name == sys.argv[3] and what == "logits":
        want = [float(x) for x in v]
tol = float(sys.argv[4])
bad = [(i, got.get(i), w) for i, w in enumerate(want) if got.get(i) is None or abs(got[i] - w) > tol + 1e-6]
if bad:
    print("index, graft, torchvision:", bad)
    sys.exit(1)
PYEOF
}

# ---- 1. --preprocess torch = its values given freely = torchvision
"$G" predict --base "onnx:$FX/net.onnx" --resize stretch --preprocess torch --top 5 --json "$IMG" >"$T/p_torch" 2>"$T/e1"
r1=$?
# shellcheck disable=SC2086
"$G" predict --base "onnx:$FX/net.onnx" --resize stretch --preprocess none --pixel-scale 255 $TORCH --top 5 --json \
  "$IMG" >"$T/p_free" 2>"$T/e2"; r2=$?
if [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && cmp -s "$T/p_torch" "$T/p_free" && near_expect "$T/p_torch" torch; then
  pass norm_torch_preset_equals_free_values
else fail norm_torch_preset_equals_free_values "rc=$r1/$r2 $(cat "$T/p_torch" "$T/p_free" "$T/e1" "$T/e2")"; fi

for c in clip half; do
  if [ $c = clip ]; then v=$CLIP; else v=$HALF; fi
  # shellcheck disable=SC2086
  "$G" predict --base "onnx:$FX/net.onnx" --resize stretch --preprocess torch $v --top 5 --json "$IMG" \
    >"$T/p_$c" 2>"$T/err"; rc=$?
  if [ $rc -eq 0 ] && clean "$T/err" && near_expect "$T/p_$c" $c && ! cmp -s "$T/p_$c" "$T/p_torch"; then
    pass norm_${c}_equals_torchvision
  else fail norm_${c}_equals_torchvision "rc=$rc $(cat "$T/p_$c" "$T/err")"; fi
done

# ---- 2. ONNX metadata: arbitrary values, named or not; flags override them
"$G" predict --base "onnx:$FX/custom.onnx" --top 5 --json "$IMG" >"$T/p" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && near_expect "$T/p" clip && has "$T/err" "custom normalization \\(x/255, minus 0\\.4814546[0-9]*,0\\.4578275,0\\.4082107[0-9]*, over 0\\.2686295[0-9]*,0\\.261302[0-9]*,0\\.275777[0-9]*, RGB\\)"; then
  pass norm_onnx_metadata_custom
else fail norm_onnx_metadata_custom "rc=$rc $(cat "$T/p" "$T/err")"; fi
"$G" predict --base "onnx:$FX/unnamed.onnx" --top 5 --json "$IMG" >"$T/p" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && near_expect "$T/p" half; then pass norm_onnx_metadata_unnamed
else fail norm_onnx_metadata_unnamed "rc=$rc $(cat "$T/p" "$T/err")"; fi
# shellcheck disable=SC2086
"$G" predict --base "onnx:$FX/custom.onnx" --preprocess torch --top 5 --json "$IMG" >"$T/p" 2>"$T/err"; rc=$?
"$G" predict --base "onnx:$FX/custom.onnx" --std 0.5,0.5,0.5 --mean 0.5,0.5,0.5 --top 5 --json "$IMG" >"$T/p2" 2>>"$T/err"
rc2=$?
if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && cmp -s "$T/p" "$T/p_torch" && near_expect "$T/p2" half; then
  pass norm_onnx_flags_override_metadata
else fail norm_onnx_flags_override_metadata "rc=$rc/$rc2 $(cat "$T/p" "$T/p2" "$T/err")"; fi
ok=1
for b in "bad_std:graft.std '0.26862954,0,0.27577711' is not three positive finite numbers" \
         "bad_mean:graft.mean '0.48145466,nan,0.40821073' is not three finite numbers" \
         "bad_partial:gives no graft.std"; do
  f=${b%%:*}; msg=${b#*:}
  "$G" predict --base "onnx:$FX/$f.onnx" "$IMG" >"$T/p" 2>"$T/err"; rc=$?
  if ! clean_fail $rc "$T/err" "$f.onnx: metadata .*$msg"; then ok=0; echo "  $f: rc=$rc $(cat "$T/err")"; fi
done
if [ $ok = 1 ]; then pass norm_onnx_bad_metadata; else fail norm_onnx_bad_metadata "see above"; fi

# ---- 3. bad flag values: a usage error (2) that says what is wrong, on every command taking --preprocess
ok=1
for b in "--mean:0.5,0.5:expected 3 comma-separated numbers.*got 2" \
         "--mean:0.5,0.5,0.5,0.5:expected 3 comma-separated numbers.*got more" \
         "--mean:0.5,x,0.5:value 2 \('x'\) is not a number" \
         "--mean:0.5,,0.5:value 2 \(''\) is not a number" \
         "--mean:nan,0.5,0.5:value 1 \('nan'\) is not finite" \
         "--std:0.5,0.5,inf:value 3 \('inf'\) is not finite" \
         "--std:0.5,0,0.5:value 2 \(0\) must be greater than 0" \
         "--std:-0.2,0.5,0.5:value 1 \(-0.2\) must be greater than 0" \
         "--pixel-scale:0:expected a finite number > 0" \
         "--channel-order:grb:expected rgb or bgr"; do
  o=${b%%:*}; rest=${b#*:}; v=${rest%%:*}; msg=${rest#*:}
  "$G" predict --base "onnx:$FX/net.onnx" "$o" "$v" "$IMG" >"$T/p" 2>"$T/err"; rc=$?
  if [ $rc -ne 2 ] || ! has "$T/err" "^graft: error: $o '$v': $msg" || ! clean "$T/err"; then
    ok=0; echo "  $o $v: rc=$rc $(cat "$T/err")"
  fi
done
for cmd in train predict extract probe eval; do
  "$G" "$cmd" --help >"$T/h" 2>&1
  if ! has "$T/h" "^  --preprocess" || ! has "$T/h" "^  --mean A,B,C" || ! has "$T/h" "^  --std A,B,C"; then
    ok=0; echo "  $cmd --help lacks --preprocess/--mean/--std"
  fi
  "$G" "$cmd" --std 1,0,1 >"$T/p" 2>"$T/err"; rc=$?
  if [ $rc -ne 2 ] || ! has "$T/err" "^graft: error: --std '1,0,1': value 2 \(0\) must be greater than 0"; then
    ok=0; echo "  $cmd --std 1,0,1: rc=$rc $(cat "$T/err")"
  fi
done
if [ $ok = 1 ]; then pass norm_bad_flag_values; else fail norm_bad_flag_values "see above"; fi

# ---- 4. older model files (graft before free values): load, answer as then; a preset = its values
ok=1
GA=$(cd "$(dirname "$G")" && pwd)/$(basename "$G")
for m in old_caffe old_torch; do   # (run in $FX: the answers name the image as img.png)
  (cd "$FX" && "$GA" predict --model "$m.gft" --json img.png) >"$T/p" 2>"$T/err" || { ok=0; cat "$T/err"; }
  grep "^$m " "$FX/old_predict.txt" | cut -d' ' -f2- >"$T/want"
  cmp -s "$T/p" "$T/want" || { ok=0; echo "  $m: $(cat "$T/p") want $(cat "$T/want")"; }
done
"$G" predict --model "$FX/old_caffe.gft" --json "$IMG" >"$T/a" 2>"$T/err"
"$G" predict --model "$FX/old_caffe.gft" --preprocess none --pixel-scale 1 --mean 103.939,116.779,123.68 \
  --channel-order bgr --json "$IMG" >"$T/b" 2>>"$T/err"
cmp -s "$T/a" "$T/b" || { ok=0; echo "  caffe preset != its values: $(cat "$T/a" "$T/b" "$T/err")"; }
"$G" info "$FX/old_caffe.gft" >"$T/i" 2>&1
has "$T/i" "^input recipe: resize stretch, bilinear interpolation, caffe normalization \(BGR, minus the ImageNet mean\)" \
  || { ok=0; echo "  info: $(grep recipe "$T/i")"; }
if [ $ok = 1 ]; then pass norm_old_model_files; else fail norm_old_model_files "see above"; fi

need_numpy_pil norm_model_file "to make the training data"
# ---- 5. a model trained with free values keeps them: info, predict, eval, export, import
"$PY" - "$T/data" <<'PYEOF'
import os, sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(5)
for c, col in (("a", (200, 40, 40)), ("b", (40, 40, 200))):
    os.makedirs(os.path.join(sys.argv[1], c))
    for i in range(4):
        px = np.clip(np.array(col) + rng.integers(-30, 30, (8, 8, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(px).save(os.path.join(sys.argv[1], c, "%d.png" % i))
PYEOF
# shellcheck disable=SC2086
"$G" train --base "onnx:$FX/net.onnx" --data "$T/data" --head dense:2:softmax --epochs 1 --batch 4 --resize stretch \
  --preprocess torch $CLIP --seed 1 --out "$T/m.gft" -q >"$T/out" 2>"$T/err"; rc=$?
"$G" info --json "$T/m.gft" >"$T/i" 2>>"$T/err"
if [ $rc -eq 0 ] && "$PY" - "$T/i" <<'PYEOF'
import json, sys
import numpy as np
o = json.load(open(sys.argv[1]))
n = o["input_recipe"]["normalization"]
f = lambda v: np.float32(v).tobytes()
assert o["input_recipe"]["preprocess"] == "custom", o["input_recipe"]
assert f(n["pixel_scale"]) == f(255) and n["channel_order"] == "RGB", n
assert [f(x) for x in n["mean"]] == [f(x) for x in (0.48145466, 0.4578275, 0.40821073)], n
assert [f(x) for x in n["std"]] == [f(x) for x in (0.26862954, 0.26130258, 0.27577711)], n
PYEOF
then pass norm_model_file_keeps_values
else fail norm_model_file_keeps_values "rc=$rc $(cat "$T/i" "$T/err" | tail -5)"; fi

# predict and eval --model use the stored values: the same as the values given, not the torch preset's
"$G" predict --model "$T/m.gft" --json "$IMG" >"$T/pm" 2>"$T/err"; r1=$?
# shellcheck disable=SC2086
"$G" predict --model "$T/m.gft" --preprocess torch $CLIP --json "$IMG" >"$T/pc" 2>>"$T/err"; r2=$?
"$G" predict --model "$T/m.gft" --preprocess torch --json "$IMG" >"$T/pt" 2>>"$T/err"; r3=$?
"$G" eval --model "$T/m.gft" --data "$T/data" --json >"$T/em" 2>>"$T/err"; r4=$?
# shellcheck disable=SC2086
"$G" eval --model "$T/m.gft" --data "$T/data" --preprocess torch $CLIP --json >"$T/ec" 2>>"$T/err"; r5=$?
"$G" eval --model "$T/m.gft" --data "$T/data" --preprocess torch --json >"$T/et" 2>>"$T/err"; r6=$?
if [ "$r1$r2$r3$r4$r5$r6" = 000000 ] && cmp -s "$T/pm" "$T/pc" && ! cmp -s "$T/pm" "$T/pt" \
   && [ "$(grep -o '"loss": [0-9.e-]*' "$T/em")" = "$(grep -o '"loss": [0-9.e-]*' "$T/ec")" ] \
   && [ "$(grep -o '"loss": [0-9.e-]*' "$T/em")" != "$(grep -o '"loss": [0-9.e-]*' "$T/et")" ]; then
  pass norm_predict_eval_use_model_values
else fail norm_predict_eval_use_model_values "rc=$r1$r2$r3$r4$r5$r6 $(cat "$T/pm" "$T/pc" "$T/pt" "$T/err")"; fi

# export: the values in metadata_props (shortest text of each float); import reads them back
"$G" export --model "$T/m.gft" --out "$T/m.onnx" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && "$PY" - "$T/m.onnx" <<'PYEOF'
import sys
import numpy as np
import onnx
kv = {p.key: p.value for p in onnx.load(sys.argv[1]).metadata_props}
want = {"graft.preprocess": "custom", "graft.pixel_scale": "255", "graft.channel_order": "RGB",
        "graft.mean": "0.48145466,0.4578275,0.40821073", "graft.std": "0.26862954,0.26130258,0.27577711"}
f32 = lambda s: [np.float32(x).tobytes() for x in s.split(",")]   # the same float32 values
same = lambda k, v: kv.get(k) == v or (k in ("graft.mean", "graft.std") and k in kv and f32(kv[k]) == f32(v))
bad = {k: (kv.get(k), v) for k, v in want.items() if not same(k, v)}
if bad:
    print(bad)
    sys.exit(1)
PYEOF
then
  "$G" predict --base "onnx:$T/m.onnx" --json "$IMG" >"$T/po" 2>"$T/err"; rc=$?
  if [ $rc -eq 0 ] && "$PY" - "$T/pm" "$T/po" <<'PYEOF'
import json, sys
a, b = (json.loads(open(p).readline()) for p in sys.argv[1:3])
pa = {t["index"]: t["prob"] for t in a["top"]}
pb = {t["index"]: t["prob"] for t in b["top"]}
assert pa.keys() == pb.keys() and all(abs(pa[k] - pb[k]) <= 1e-5 for k in pa), (pa, pb)
PYEOF
  then pass norm_onnx_export_roundtrip
  else fail norm_onnx_export_roundtrip "rc=$rc $(cat "$T/pm" "$T/po" "$T/err")"; fi
else fail norm_onnx_export_roundtrip "export rc=$rc $(cat "$T/out" "$T/err")"; fi

# ---- 6. corrupt stored values: clear errors naming the file
MUT=tests/fixtures/mutate_gft.py
ok=1
for b in 'normalization.std:[0.26862954, 0, 0.27577711]:normalization std is missing or not 3 positive finite numbers' \
         'normalization.std:[0.26862954, 0.26130258]:normalization std is missing or not 3 positive finite numbers' \
         'normalization.mean:[0.5, "x", 0.5]:normalization mean is missing or not 3 finite numbers' \
         'normalization.mean:[0.5, NaN, 0.5]:(normalization mean is missing or not 3 finite numbers|not valid JSON|architecture)' \
         'normalization.pixel_scale:-255:normalization pixel_scale is missing or not a positive finite number' \
         'normalization.channel_order:"GRB":normalization channel_order is missing or not "RGB" or "BGR"' \
         'normalization:null:preprocessing .custom. without its "normalization" values' \
         'preprocess:"torch":preprocessing .torch. disagrees with the normalization values stored beside it' \
         'preprocess:"imagenet":unknown preprocessing .imagenet.'; do
  key=${b%%:*}; rest=${b#*:}; val=${rest%%:*}; msg=${rest#*:}
  rm -f "$T/bad.gft"
  "$PY" "$MUT" arch "$T/m.gft" "$T/bad.gft" "$key" "$val" || { ok=0; echo "  mutate $key failed"; continue; }
  "$G" predict --model "$T/bad.gft" "$IMG" >"$T/p" 2>"$T/err"; rc=$?
  if ! clean_fail $rc "$T/err" "bad.gft.*$msg"; then ok=0; echo "  $key=$val: rc=$rc $(cat "$T/err")"; fi
done
if [ $ok = 1 ]; then pass norm_corrupt_stored_values; else fail norm_corrupt_stored_values "see above"; fi

# ---- 7. --resume takes the recipe from the checkpoint
"$G" train --resume "$T/nothing.ckpt" --mean 0.5,0.5,0.5 >"$T/p" 2>"$T/err"; rc=$?
if [ $rc -eq 2 ] && has "$T/err" "--resume takes the input recipe from the checkpoint: drop .*--mean"; then
  pass norm_resume_refuses_overrides
else fail norm_resume_refuses_overrides "rc=$rc $(cat "$T/err")"; fi
