#!/usr/bin/env bash
# test_vit.sh — a Vision Transformer as `--base onnx:FILE.onnx` through the
# CLI (tests/fixtures/onnx/vit.onnx: torchvision's VisionTransformer, small,
# random weights; tests/test_vit.c checks its numbers against PyTorch):
#   graft info lists the token layers and cuts at the class token (pre-logits);
#   graft train on a tiny generated folder runs the whole job (frozen base,
#   new head), predict uses the model; --unfreeze an encoder layer by its
#   block name trains the attention onwards; extract writes the class-token
#   features and an encoder layer's tokens; probe ranks its cuts; predict
#   --base runs its own classifier; a malformed attention exits
#   non-zero naming node and operator.
set -u
. "$(dirname "$0")/lib.sh"
FX=tests/fixtures/onnx
# fail NAME FILE...: the result line, then the files' last lines
failf() { fail "$1" "see below"; shift; for f in "$@"; do tail -20 "$f"; done; }

"$G" info --base "onnx:$FX/vit.onnx" >"$T/info" 2>"$T/err"
if [ $? -eq 0 ] && grep -qE '^0 +conv_proj/Conv +conv2d +\(None, 4, 4, 32\)' "$T/info" \
   && grep -qE '^1 +Concat +class_token +\(None, 1, 17, 32\) +32' "$T/info" \
   && grep -qE '^2 +encoder/Add +position_embedding +\(None, 1, 17, 32\) +544' "$T/info" \
   && grep -qE 'encoder/layers/encoder_layer_1/self_attention +self_attention +\(None, 1, 17, 32\) +4224' "$T/info" \
   && grep -qE 'encoder/layers/encoder_layer_1/Add_1 +add ' "$T/info" \
   && tail -n +3 "$T/info" | grep -E '^[0-9]+ ' | tail -1 | grep -qE '^18 +Gather +select_token +\(None, 32\)'; then
  pass vit_info_layers
else failf vit_info_layers "$T/info" "$T/err"; fi

"$G" info --base "onnx:$FX/bad_vit_softmax.onnx" >"$T/o" 2>"$T/e"
rc=$?
if clean_fail $rc "$T/e" && grep -q "^graft: error: .*bad_vit_softmax.onnx: node [0-9]* '/encoder/layers/encoder_layer_0/self_attention/Softmax' (Softmax, opset 13): softmax over axis 1" "$T/e"; then
  pass vit_bad_softmax
else failf "vit_bad_softmax: rc $rc" "$T/o" "$T/e"; fi

need_numpy_pil vit_train
"$PY" - "$T/ds" <<'PY'
import sys, os, numpy as np
from PIL import Image
r = np.random.RandomState(0)
for c, col in [('blue', (30, 30, 200)), ('red', (200, 30, 30))]:
  os.makedirs(os.path.join(sys.argv[1], c))
  for i in range(8):
      a = (np.array(col)[None, None, :] + r.randint(-40, 40, (32, 32, 3))).clip(0, 255).astype('uint8')
      Image.fromarray(a).save(os.path.join(sys.argv[1], c, '%d.png' % i))
PY
"$G" train --base "onnx:$FX/vit.onnx" --data "$T/ds" --epochs 3 --head dense:2:softmax --out "$T/m.gft" \
    >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -eq 0 ] && [ -s "$T/m.gft" ] && grep -q "the frozen part ends at 'Gather'" "$T/out" \
   && grep -qE "^Epoch 3/3 .*loss: [0-9.]+" "$T/out"; then
  pass vit_train
else failf "vit_train: rc $rc" "$T/out" "$T/err"; fi
"$G" predict --model "$T/m.gft" "$T/ds/red/0.png" >"$T/pred" 2>"$T/err"
if [ $? -eq 0 ] && grep -qE '^ +[0-9.]+% +(red|blue) \([01]\)$' "$T/pred"; then pass vit_predict_trained
else failf vit_predict_trained "$T/pred" "$T/err"; fi
# fine-tuning from an encoder layer on, named by its block
"$G" train --base "onnx:$FX/vit.onnx" --data "$T/ds" --epochs 2 --head dense:2:softmax --unfreeze encoder_layer_1 \
    --out "$T/u.gft" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q "^Training 11 layers from 'encoder/layers/encoder_layer_1/ln_1/ReduceMean'" "$T/out" \
   && grep -qE "^Epoch 2/2 .*loss: [0-9.]+" "$T/out"; then
  pass vit_train_unfreeze
else failf vit_train_unfreeze "$T/out" "$T/err"; fi
# the class-token features (the default cut) and an encoder layer's output tokens
"$G" extract --base "onnx:$FX/vit.onnx" --data "$T/ds" --layer Gather --out "$T/f.npy" >"$T/out" 2>"$T/err" &&
"$G" extract --base "onnx:$FX/vit.onnx" --data "$T/ds" --layer encoder/layers/encoder_layer_0/Add_1 \
    --out "$T/t.npy" >>"$T/out" 2>>"$T/err"
if [ $? -eq 0 ] && "$PY" -c "import numpy as np, sys
a, t = np.load('$T/f.npy'), np.load('$T/t.npy')
sys.exit(0 if a.shape[0] == 16 and a.size == 16 * 32 and t.shape == (16, 1, 17, 32) else 1)" 2>>"$T/err"; then
  pass vit_extract
else failf vit_extract "$T/out" "$T/err"; fi
# probe ranks the ViT's cuts; predict --base keeps its classifier (10 scores)
"$G" probe --base "onnx:$FX/vit.onnx" --data "$T/ds" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && grep -q "^onnx:$FX/vit.onnx  *Gather 1x1x32 " "$T/out" \
   && grep -q "^recommendation: --base onnx:$FX/vit.onnx" "$T/out"; then pass vit_probe
else failf vit_probe "$T/out" "$T/err"; fi
"$G" predict --base "onnx:$FX/vit.onnx" "$T/ds/red/0.png" >"$T/pred" 2>"$T/err"
if [ $? -eq 0 ] && [ "$(grep -cE '^ +score -?[0-9.]+ +\? \([0-9]\)$' "$T/pred")" -eq 5 ]; then pass vit_predict_base
else failf vit_predict_base "$T/pred" "$T/err"; fi
