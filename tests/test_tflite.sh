#!/usr/bin/env bash
# test_tflite.sh — a TFLite MobileNet as a `graft train` base end to end:
#   --base tflite:mobilenet_v1_0.25_128_quant.tflite on a small generated
#   folder (2 classes) at 64x64 (the 4x4 average pool becomes a global one):
#   the default cut is the pool before the 1001-class conv, preprocessing tf,
#   training learns the two colours; `graft predict --base` on cat.bmp gives
#   class 286 (Egyptian cat); a copy with an unsupported operator is a clean
#   error naming it.  SKIP without ../shared/data.
set -u
. "$(dirname "$0")/lib.sh"
M=$DATA/weights/coral-tflite/mobilenet_v1_0.25_128_quant.tflite
if ! [ -r "$M" ]; then echo "SKIP tflite_cli: no $M"; exit 0; fi
if ! "$PY" -c 'import numpy, PIL' 2>/dev/null; then echo "SKIP tflite_cli: python3 numpy/PIL needed"; exit 0; fi

"$PY" - "$T/ds" <<'PY'
import sys, os, numpy as np
from PIL import Image
r = np.random.RandomState(0)
for c, col in [('blue', (30, 30, 200)), ('red', (200, 30, 30))]:
    os.makedirs(os.path.join(sys.argv[1], c))
    for i in range(8):
        a = (np.array(col)[None, None, :] + r.randint(-40, 40, (64, 64, 3))).clip(0, 255).astype('uint8')
        Image.fromarray(a).save(os.path.join(sys.argv[1], c, '%d.png' % i))
PY

"$G" train --base "tflite:$M" --data "$T/ds" --input-size 64 --epochs 3 --head dense:2:softmax \
    --out "$T/m.gft" >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -eq 0 ] && grep -q "preprocessing tf" "$T/out" && \
   grep -q "frozen part ends at 'MobilenetV1/Logits/AvgPool_1a/AvgPool'" "$T/out" && \
   grep -qE "^Epoch 3/3 .*accuracy: 1\.0000" "$T/out"; then
  echo "PASS tflite_cli_train"
else
  echo "FAIL tflite_cli_train: rc $rc"; cat "$T/out" "$T/err" | tail -20
fi

"$G" predict --base "tflite:$M" "$DATA/images/cat.bmp" >"$T/pred" 2>"$T/err"
if [ $? -eq 0 ] && sed -n 1p "$T/pred" | grep -q "^weights: $M (in the .tflite file)$" \
   && sed -n 3p "$T/pred" | grep -q "(286)"; then echo "PASS tflite_cli_predict_cat"
else echo "FAIL tflite_cli_predict_cat"; cat "$T/pred" "$T/err"; fi

# AVERAGE_POOL_2D's opcode -> TRANSPOSE (39), offsets from tests/fixtures/tflite/patch.txt
cp "$M" "$T/bad.tflite"; chmod u+w "$T/bad.tflite"
read -r _ dep bc < <(grep '^opcode ' tests/fixtures/tflite/patch.txt)
"$PY" -c "
import sys, struct
f = open(sys.argv[1], 'r+b'); d, b = int(sys.argv[2]), int(sys.argv[3])
if d >= 0: f.seek(d); f.write(bytes([39]))
if b >= 0: f.seek(b); f.write(struct.pack('<i', 39))
" "$T/bad.tflite" "$dep" "$bc"
"$G" info --base "tflite:$T/bad.tflite" >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -ge 1 ] && [ $rc -le 2 ] && grep -q "^graft: error: .*bad.tflite.*TRANSPOSE.*not supported" "$T/err" && \
   ! grep -qE "Sanitizer|runtime error" "$T/err"; then echo "PASS tflite_cli_unsupported_op"
else echo "FAIL tflite_cli_unsupported_op: rc $rc"; cat "$T/err"; fi
