#!/usr/bin/env bash
# onnx_runtimes.sh — graft's ONNX exports run by ONNX Runtime and OpenVINO
# (not Debian packages: they come from the peers' venv that bench/peers.sh
# setup creates, $B/peers-venv; any venv with onnxruntime, openvino, onnx,
# numpy and pillow does: PEERS_VENV=DIR) and by OpenCV (Debian's
# python3-opencv), each compared with `graft predict` on the same images:
#   tiny         a darknet cfg base (conv+bn+leaky+maxpool), standardize,
#                flatten + dense head (random base weights, 2 epochs)
#   every-op     grouped conv, route, shortcut, darknet maxpool padding and
#                every activation on dense layers after a flatten (opset 13 and 17)
#   layernorm    a gap + layernorm head (OpenCV 4.6 cannot run it)
#   onnx-base    tests/fixtures/onnx/small.onnx as the base (relu6, depthwise)
#   vit          tests/fixtures/onnx/vit.onnx (a small ViT) fine-tuned from its last
#                encoder layer (opsets 13 and 17; OpenCV one image at a time)
#   api-maps     tests/test_onnx_export.c's model of every op on maps (opsets 11, 18)
#   api-norms    its layer norm + squeeze-and-excitation model (OpenCV 4.6 cannot run it)
#   tiny-darknet the real pretrained Tiny Darknet (../shared/data) at 224x224
#                with a gap + dense head trained on the real photos there
# Prints one line per model and runtime: "<runtime> max_abs_diff=<d>" (the
# largest difference of a probability).  Skips with a message when the venv
# or the data is missing.  Usage: bench/onnx_runtimes.sh   (B=build)
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
G=${GRAFT_BIN:-$B/graft}
VENV=${PEERS_VENV:-$B/peers-venv}
DATA=${GRAFT_DATA:-../shared/data}
CHK=tests/fixtures/check_onnx_export.py
VPY=$VENV/bin/python
[ -x "$G" ] || { echo "onnx_runtimes: build graft first (make)"; exit 1; }
if ! [ -x "$VPY" ] || ! "$VPY" -c 'import onnxruntime, openvino, onnx, numpy, PIL' 2>/dev/null; then
  echo "onnx_runtimes: SKIPPED — $VENV with onnxruntime, openvino, onnx, numpy and pillow is missing" \
       "(bench/peers.sh setup creates it where the Python package index is reachable)"
  exit 0
fi
T=$(mktemp -d /tmp/graft-onnx-runtimes-XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2
"$VPY" - <<'EOF'
import importlib.metadata as md
print("onnx_runtimes: " + ", ".join("%s %s" % (p, md.version(p)) for p in ("onnxruntime", "openvino", "onnx")))
EOF
/usr/bin/python3 -c 'import cv2; print("onnx_runtimes: opencv", cv2.__version__)' 2>/dev/null
/usr/bin/python3 tests/fixtures/gen_cli.py folder "$T/fold" 6 3 || exit 1
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"
sed -n '/^cat >"\$T\/dk.cfg" <<.EOF.$/,/^EOF$/p' tests/test_onnx_export.sh | sed '1d;$d' >"$T/dk.cfg"

# run NAME MODEL.gft IMAGES-DIR [export options]: export, predict, every runtime
run() {
  local name=$1 model=$2 dir=$3; shift 3
  "$G" export "$model" --out "$T/$name.onnx" -q "$@" || return
  "$G" predict --model "$model" --json --top 1000 "$dir" >"$T/p.jsonl" 2>/dev/null || { echo "$name: predict failed"; return; }
  echo "== $name ($*)"
  "$VPY" "$CHK" "$T/$name.onnx" "$T/p.jsonl" checker,onnxruntime,openvino 2>&1 | grep -v '^\[' | sed 's/^/   /'
  local cvb=()
  [ "$name" = vit ] && cvb=(--batch 1)   # OpenCV 4.6 runs layer norm over tokens one image at a time
  [ "$name" = layernorm ] ||
    /usr/bin/python3 "$CHK" "$T/$name.onnx" "$T/p.jsonl" opencv "${cvb[@]}" 2>&1 | grep -v '^\[' | sed 's/^/   /'
}
train() { local out=$1; shift; "$G" train "$@" --epochs 2 --out "$out" -q >/dev/null 2>"$T/err" || { tail -3 "$T/err"; return 1; }; }

train "$T/a.gft" --base "darknet:$T/tiny.cfg" --weights none --data "$T/fold" --head flatten,dropout:0.3,dense:16:relu,dense:N:softmax &&
  run tiny "$T/a.gft" "$T/fold"
HEAD=flatten,dense:16:relu6,dense:16:swish,dense:16:hardswish,dense:16:hardsigmoid,dense:16:gelu,dense:16:tanh
HEAD=$HEAD,dense:16:sigmoid,dense:16:leaky,batchnorm,dense:N:softmax
train "$T/b.gft" --base "darknet:$T/dk.cfg" --weights none --data "$T/fold" --cut 7 --head "$HEAD" &&
  { run every-op "$T/b.gft" "$T/fold" --opset 13; run every-op "$T/b.gft" "$T/fold" --opset 17; }
train "$T/d.gft" --base "darknet:$T/tiny.cfg" --weights none --data "$T/fold" --head gap,layernorm,dense:N:softmax &&
  run layernorm "$T/d.gft" "$T/fold"
train "$T/o.gft" --base onnx:tests/fixtures/onnx/small.onnx --resize stretch --data "$T/fold" --head dense:N:softmax &&
  run onnx-base "$T/o.gft" "$T/fold"
train "$T/v.gft" --base onnx:tests/fixtures/onnx/vit.onnx --resize stretch --data "$T/fold" --head dense:N:softmax \
    --unfreeze encoder_layer_1 &&
  { run vit "$T/v.gft" "$T/fold" --opset 13; run vit "$T/v.gft" "$T/fold" --opset 17; }

# the C API's models (tests/test_onnx_export.c): every op on maps; layer norm + squeeze-excitation
if [ -x "$B/tests/test_onnx_export" ] && "$B/tests/test_onnx_export" "$T" >/dev/null; then
  for n in maps norms; do
    for op in 11 18; do
      echo "== api-$n (--opset $op)"
      "$VPY" "$CHK" "$T/$n-opset$op.onnx" --raw "$T/$n.in.f32" "$T/$n.out.f32" checker,onnxruntime,openvino 2>&1 |
        grep -v '^\[' | sed 's/^/   /'
      [ $n = maps ] && /usr/bin/python3 "$CHK" "$T/$n-opset$op.onnx" --raw "$T/$n.in.f32" "$T/$n.out.f32" opencv 2>&1 |
        grep -v '^\[' | sed 's/^/   /'
    done
  done
fi

W=$DATA/weights/darknet-tiny
if [ -f "$W/tiny.weights" ] && [ -d "$DATA/images" ]; then
  # one class per photo, each photo stretched to 224x224 (so graft's resize is the identity)
  /usr/bin/python3 - "$DATA/images" "$T/photos" <<'EOF'
import os, sys
from PIL import Image
for f in sorted(os.listdir(sys.argv[1])):
    d = os.path.join(sys.argv[2], os.path.splitext(f)[0]); os.makedirs(d)
    Image.open(os.path.join(sys.argv[1], f)).convert("RGB").resize((224, 224), Image.BILINEAR).save(os.path.join(d, "0.png"))
EOF
  train "$T/t.gft" --base "darknet:$W/tiny.cfg" --weights "$W/tiny.weights" --resize stretch --data "$T/photos" \
      --head gap,dense:N:softmax --batch 5 &&
    run tiny-darknet "$T/t.gft" "$T/photos"
else
  echo "onnx_runtimes: tiny-darknet SKIPPED — $W/tiny.weights or $DATA/images is missing"
fi
