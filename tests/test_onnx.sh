#!/usr/bin/env bash
# test_onnx.sh — ONNX models as `--base onnx:FILE.onnx` through the CLI:
#   graft info prints the layer table (BN folded, ReLU6 fused, pre-logits cut);
#   graft train on a tiny generated folder (frozen base + new head) runs and
#   saves a model that graft predict uses; graft predict --base (with the
#   model's own classifier); bad files exit non-zero with `graft: error:`
#   naming the file and the problem; torchvision's resnet18 and squeezenet1_1
#   (random weights, exported at test time: resnet18 is 45 MB) match PyTorch
#   (build/tests/test_onnx NAME DIR SIZE CLASSES FEATURES); that part SKIPs
#   without python3-torch/torchvision/onnx.
set -u
G=${GRAFT_BIN:-build/graft}
FX=tests/fixtures/onnx
PY=/usr/bin/python3
T=$(mktemp -d /tmp/graft-test-onnx-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; shift; for f in "$@"; do tail -20 "$f"; done; }

"$G" info --base "onnx:$FX/small.onnx" >"$T/info" 2>"$T/err"
if [ $? -eq 0 ] && grep -qE '^0 +conv1/Conv +conv2d\+relu +\(None, 32, 32, 8\) +224' "$T/info" \
   && grep -qE '^5 +dw/Conv +conv2d\+relu6 +\(None, 8, 8, 8\)' "$T/info" \
   && grep -qE 'GlobalAveragePool +global_average_pooling2d +\(None, 16\)' "$T/info" \
   && ! grep -q 'Gemm' "$T/info"; then pass onnx_info_layers
else fail onnx_info_layers "$T/info" "$T/err"; fi

# two colours, 8 images each, 32x32 (the fixture's own input size)
if "$PY" -c 'import numpy, PIL' 2>/dev/null; then
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
  "$G" train --base "onnx:$FX/small.onnx" --data "$T/ds" --epochs 3 --head dense:2:softmax --out "$T/m.gft" \
      >"$T/out" 2>"$T/err"
  rc=$?
  if [ $rc -eq 0 ] && [ -s "$T/m.gft" ] && grep -q "^weights: $FX/small.onnx (in the .onnx file)$" "$T/out" \
     && grep -q "the frozen part ends at 'GlobalAveragePool'" "$T/out" && grep -q "^Epoch 3/3 " "$T/out"; then
    pass onnx_train
  else fail "onnx_train: rc $rc" "$T/out" "$T/err"; fi
  "$G" predict --model "$T/m.gft" "$T/ds/red/0.png" >"$T/pred" 2>"$T/err"
  if [ $? -eq 0 ] && grep -qE '^ +[0-9.]+% +(red|blue) \([01]\)$' "$T/pred"; then pass onnx_predict_trained
  else fail onnx_predict_trained "$T/pred" "$T/err"; fi
  # fine-tuning from an ONNX layer name on: the layers after it train
  "$G" train --base "onnx:$FX/small.onnx" --data "$T/ds" --epochs 2 --head dense:2:softmax --unfreeze pw/Conv \
      --out "$T/u.gft" >"$T/out" 2>"$T/err"
  if [ $? -eq 0 ] && grep -q "^Training 5 layers from 'pw/Conv'" "$T/out" && grep -q "^Epoch 2/2 " "$T/out"; then
    pass onnx_train_unfreeze
  else fail onnx_train_unfreeze "$T/out" "$T/err"; fi
  # fine-tuning the whole of a ConvNeXt (layer norms, GELU, 1x1 convs from
  # MatMul) and a MobileNetV3 (hardswish, SE multiply): every op has a backward
  for spec in "convnext features/features.0/features.0.0/Conv 23" "mnv3 features/features.0/features.0.0/Conv 69"; do
    set -- $spec
    "$G" train --base "onnx:$FX/$1.onnx" --data "$T/ds" --epochs 2 --head dense:2:softmax --unfreeze "$2" \
        --out "$T/$1.gft" >"$T/out" 2>"$T/err"
    if [ $? -eq 0 ] && grep -q "^Training $3 layers from '$2'" "$T/out" && grep -qE "^Epoch 2/2 .*loss: [0-9.]+" "$T/out"; then
      pass "onnx_train_unfreeze_$1"
    else fail "onnx_train_unfreeze_$1" "$T/out" "$T/err"; fi
  done
  # probe ranks two ONNX bases' cuts
  "$G" probe --base "onnx:$FX/small.onnx" --base "onnx:$FX/mnv2.onnx" --data "$T/ds" --input-size 64 \
      >"$T/out" 2>"$T/err"
  if [ $? -eq 0 ] && grep -q "^onnx:$FX/mnv2.onnx  *GlobalAveragePool 1x1x1280 " "$T/out" \
     && grep -q "^recommendation: --base onnx:$FX/" "$T/out"; then pass onnx_probe
  else fail onnx_probe "$T/out" "$T/err"; fi
  "$G" predict --base "onnx:$FX/small.onnx" "$T/ds/red/0.png" >"$T/pred" 2>"$T/err"
  if [ $? -eq 0 ] && [ "$(grep -cE '^ +score -?[0-9.]+ +\? \([0-9]\)$' "$T/pred")" -eq 5 ]; then pass onnx_predict_base
  else fail onnx_predict_base "$T/pred" "$T/err"; fi
else
  echo "SKIP onnx_train: python3 numpy/PIL needed"
fi

# bad files: non-zero exit, graft: error: naming the file and the problem
check_bad() {  # name file pattern
  "$G" info --base "onnx:$2" >"$T/o" 2>"$T/e"
  rc=$?
  if [ $rc -ne 0 ] && grep -q "^graft: error: .*$2.*$3" "$T/e"; then pass "onnx_bad_$1"
  else fail "onnx_bad_$1: rc $rc" "$T/o" "$T/e"; fi
}
check_bad ops "$FX/bad_ops.onnx" "Selu x2"
check_bad dtype "$FX/bad_bf16.onnx" "BFLOAT16"
check_bad hsig "$FX/bad_hsig.onnx" "HardSigmoid with alpha 0.2"
check_bad erf "$FX/bad_erf.onnx" "Erf on activations is supported only inside the patterns of GELU"
check_bad outside "$FX/bad_outside.onnx" "outside the model's folder"
head -c 5000 "$FX/small.onnx" >"$T/cut.onnx"
check_bad truncated "$T/cut.onnx" "not a valid ONNX protobuf"
check_bad missing "$T/none.onnx" "cannot open"
"$G" train --base "onnx:$FX/small.onnx" --weights x.h5 --data "$T/ds" --out "$T/x.gft" >"$T/o" 2>"$T/e"
if [ $? -ne 0 ] && grep -q "^graft: error: --weights x.h5: a onnx: base carries its own weights" "$T/e"; then
  pass onnx_weights_refused
else fail onnx_weights_refused "$T/o" "$T/e"; fi

# torchvision models (random weights) against PyTorch: resnet18 (45 MB: made here,
# not committed), squeezenet1_1 (channel concats, ceil_mode pools, a conv classifier)
TB=$(dirname "$G")/tests/test_onnx
if ! "$PY" -c 'import torch, torchvision, onnx' 2>/dev/null; then
  echo "SKIP onnx_torchvision: python3-torch, python3-torchvision and python3-onnx needed"
elif ! [ -x "$TB" ]; then
  echo "SKIP onnx_torchvision: no $TB"
else
  for spec in "resnet18 64 512" "squeezenet1_1 64 10"; do
    set -- $spec
    if "$PY" tests/fixtures/gen_onnx.py --torchvision "$1" "$2" "$T" >"$T/gen" 2>&1; then
      "$TB" "$1" "$T" "$2" 10 "$3"
    else
      fail "onnx_torchvision_$1: gen_onnx.py --torchvision $1 failed" "$T/gen"
    fi
    rm -f "$T/$1".*
  done
fi
