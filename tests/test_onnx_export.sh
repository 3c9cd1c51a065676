#!/usr/bin/env bash
# test_onnx_export.sh — `graft export MODEL.gft --out MODEL.onnx` checked by
# independent runtimes: tiny models are trained here (darknet cfg bases with
# --weights none, as test_cli_train.sh; an ONNX base), exported, and the
# file is run by tests/fixtures/check_onnx_export.py with onnx.checker
# (python3-onnx, full check) and OpenCV's dnn module (python3-opencv), and by
# ONNX Runtime / OpenVINO when their Python modules are installed (they are
# not Debian packages: bench/onnx_runtimes.sh runs them from the peers'
# venv).  Each runtime's probabilities must equal `graft predict --json`'s
# within 1e-4 on the same images, preprocessed the way README "Export to
# ONNX" tells a user to (from the file's metadata).  Covered: conv (plain,
# grouped/depthwise, stride 2), batchnorm on maps and on flat values,
# leaky/relu/sigmoid/tanh/relu6/swish/hardswish/hardsigmoid/gelu/softmax,
# maxpool with darknet's odd padding, global average pool, add (shortcut),
# concat (route), standardize on a map, flatten over a spatial map (HWC
# order kept), dropout, dense; opsets 11, 13, 17, 18; a fixed batch; the
# C API's models of tests/test_onnx_export.c (multiply, layer norm, average
# pool, softmax over a map: ops no CLI-trained model has); a ViT base
# fine-tuned (class token, position embedding, attention, token selection).  The
# round trip: graft imports its own export (--base onnx:FILE) and predicts
# the same.  Bad inputs: each a clean "graft: error:", a non-zero exit and
# no file left (an existing --out untouched).
set -u
. "$(dirname "$0")/lib.sh"
CHK=tests/fixtures/check_onnx_export.py

need_numpy_pil onnx_export "to make the test images"
if ! "$PY" -c 'import onnx' 2>/dev/null; then
  echo "SKIP onnx_export: python3-onnx is needed (scripts/deps.sh test installs it)"; exit 0
fi
RT=checker
if "$PY" -c 'import cv2' 2>/dev/null; then RT=checker,opencv
else echo "SKIP onnx_export_opencv: python3-opencv is not installed (scripts/deps.sh test installs it)"; fi
"$PY" -c 'import onnxruntime' 2>/dev/null && RT=$RT,onnxruntime

"$PY" "$GEN" folder "$T/fold" 6 3 || { echo "FAIL onnx_export_setup: gen_cli.py"; exit 1; }
IMGS=("$T"/fold/*/*.png)
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"   # conv+bn+leaky+maxpool x2
# every darknet layer graft maps: stride-2 conv+bn+relu, depthwise conv+logistic,
# route (concat), 1x1 conv+bn+tanh, conv+leaky, shortcut (add), darknet's
# size-2 stride-1 maxpool (odd padding), size-3 stride-2 maxpool, avgpool, softmax
cat >"$T/dk.cfg" <<'EOF'
[net]
height=32
width=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=relu

[convolutional]
filters=8
size=3
stride=1
pad=1
groups=8
activation=logistic

[route]
layers=-1,-2

[convolutional]
batch_normalize=1
filters=16
size=1
stride=1
pad=0
activation=tanh

[convolutional]
filters=16
size=3
stride=1
pad=1
activation=leaky

[shortcut]
from=-2
activation=linear

[maxpool]
size=2
stride=1

[maxpool]
size=3
stride=2

[convolutional]
filters=10
size=1
stride=1
pad=0
activation=linear

[avgpool]

[softmax]
EOF

# check NAME MODEL.gft [export options...]: export, predict, compare
check() {
  local name=$1 model=$2; shift 2
  local onnx="$T/$name.onnx" batch=()
  [ "${1:-}" = --batch ] && batch=(--batch "$2")
  if ! "$G" export "$model" --out "$onnx" "$@" >"$T/out" 2>"$T/err"; then
    fail "$name" "export: $(cat "$T/err")"; return
  fi
  if ! "$G" predict --model "$model" --json --top 3 "${IMGS[@]}" >"$T/pred.jsonl" 2>"$T/err"; then
    fail "$name" "predict: $(cat "$T/err")"; return
  fi
  if "$PY" "$CHK" "$onnx" "$T/pred.jsonl" "$RT" "${batch[@]}" >"$T/chk" 2>"$T/err"; then
    pass "$name"; sed 's/^/  /' "$T/chk"
  else fail "$name" "$(cat "$T/chk") $(grep -v '^\[ERROR' "$T/err" | tail -5)"; fi
}

train() {   # train OUT BASE-OPTIONS... (2 epochs on the 3-class folder, quiet)
  local out=$1; shift
  "$G" train "$@" --data "$T/fold" --epochs 2 --out "$out" -q >"$T/tout" 2>"$T/terr" ||
    { echo "FAIL onnx_export_train: $(tail -5 "$T/terr")"; return 1; }
}

# a darknet base, the default standardize layer over its 8x8x16 map, flatten + dropout + dense head
train "$T/a.gft" --base "darknet:$T/tiny.cfg" --weights none --head flatten,dropout:0.3,dense:16:relu,dense:N:softmax &&
  check export_darknet_flatten_head "$T/a.gft"
# every op darknet gives, then every activation on dense layers after a flatten of an 8x8 map
HEAD=flatten,dense:16:relu6,dense:16:swish,dense:16:hardswish,dense:16:hardsigmoid,dense:16:gelu,dense:16:tanh
HEAD=$HEAD,dense:16:sigmoid,dense:16:leaky,batchnorm,dense:N:softmax
if train "$T/b.gft" --base "darknet:$T/dk.cfg" --weights none --cut 7 --head "$HEAD"; then
  for op in 11 13 17 18; do check "export_every_op_opset$op" "$T/b.gft" --opset "$op"; done
  check export_fixed_batch "$T/b.gft" --batch 6
  "$PY" - "$T/export_fixed_batch.onnx" "$T/export_every_op_opset13.onnx" <<'EOF' && pass export_batch_dims || fail export_batch_dims "input dims"
import onnx, sys
dims = lambda p: [d.dim_value or d.dim_param for d in onnx.load(p).graph.input[0].type.tensor_type.shape.dim]
assert dims(sys.argv[1]) == [6, 3, 32, 32], dims(sys.argv[1])
assert dims(sys.argv[2]) == ["N", 3, 32, 32], dims(sys.argv[2])
EOF
fi
# the base's own classifier (avgpool + softmax), a gap head
train "$T/c.gft" --base "darknet:$T/dk.cfg" --weights none --cut 8 --head gap,dense:N:softmax &&
  check export_gap_head "$T/c.gft"
# layer normalization: OpenCV 4.6 cannot run it (not even PyTorch's own LayerNorm
# export): onnx.checker here, ONNX Runtime where installed
if train "$T/d.gft" --base "darknet:$T/tiny.cfg" --weights none --head gap,layernorm,dense:N:softmax; then
  RT0=$RT; RT=${RT/,opencv/}; check export_layernorm "$T/d.gft"; RT=$RT0
fi
# a Vision Transformer base (tests/fixtures/onnx/vit.onnx: class token, position
# embedding, self-attention, layer norm over tokens, GELU), fine-tuned from its
# last encoder layer, at opsets 13 and 17: OpenCV 4.6 runs its layer norms over
# tokens one image at a time (--batch 1); ONNX Runtime and OpenVINO come from
# the peers' venv when there is one ($PEERS_VENV, else build/peers-venv: they
# are no Debian packages), else a SKIP line says so
VPY=${PEERS_VENV:-${B:-build}/peers-venv}/bin/python
VRT=
[ -x "$VPY" ] && "$VPY" -c 'import onnxruntime' 2>/dev/null && VRT=onnxruntime
[ -n "$VRT" ] && "$VPY" -c 'import openvino' 2>/dev/null && VRT=$VRT,openvino
[ -n "$VRT" ] || echo "SKIP export_vit_onnxruntime: no venv with onnxruntime at ${VPY%/bin/python} (bench/peers.sh setup makes one)"
if train "$T/v.gft" --base onnx:tests/fixtures/onnx/vit.onnx --resize stretch --head dense:N:softmax \
     --unfreeze encoder_layer_1; then
  for op in 13 17; do
    name=export_vit_opset$op
    if "$G" export "$T/v.gft" --out "$T/$name.onnx" --opset $op -q 2>"$T/err" &&
       "$G" predict --model "$T/v.gft" --json --top 3 "${IMGS[@]}" >"$T/pred.jsonl" 2>>"$T/err" &&
       "$PY" "$CHK" "$T/$name.onnx" "$T/pred.jsonl" "$RT" --batch 1 >"$T/chk" 2>>"$T/err" &&
       { [ -z "$VRT" ] || "$VPY" "$CHK" "$T/$name.onnx" "$T/pred.jsonl" "$VRT" >>"$T/chk" 2>>"$T/err"; }; then
      pass "$name"; sed 's/^/  /' "$T/chk"
    else fail "$name" "$(cat "$T/chk" 2>/dev/null) $(grep -v '^\[ERROR' "$T/err" | tail -5)"; fi
  done
fi
# an ONNX base (conv, depthwise conv, relu6, global pool) with the torch recipe
# (mean/std from the metadata), stretch resize so the 32x32 images are fed as they are
train "$T/o.gft" --base onnx:tests/fixtures/onnx/small.onnx --resize stretch --head dense:N:softmax &&
  check export_onnx_base "$T/o.gft"

# models built with the C API (tests/test_onnx_export.c DIR): every op on a non-square map
# (depthwise conv with uneven pads, 'same' average pool, softmax over a map's channels,
# concats of flat values...) at opsets 11..18; layer norm and a squeeze-and-excitation
# multiply (OpenCV 4.6 runs neither: checker and ONNX Runtime only)
mkdir -p "$T/fx"
if "$(dirname "$G")/tests/test_onnx_export" "$T/fx" >"$T/fxout" 2>&1; then
  for op in 11 13 17 18; do
    for n in maps norms; do
      rt=$RT; [ $n = norms ] && rt=${RT/,opencv/}
      if "$PY" "$CHK" "$T/fx/$n-opset$op.onnx" --raw "$T/fx/$n.in.f32" "$T/fx/$n.out.f32" "$rt" >"$T/chk" 2>"$T/err"
      then pass "export_api_${n}_opset$op"; sed 's/^/  /' "$T/chk"
      else fail "export_api_${n}_opset$op" "$(cat "$T/chk") $(grep -v '^\[ERROR' "$T/err" | tail -5)"; fi
    done
  done
else fail export_api_models "$(cat "$T/fxout")"; fi

# graft train --export-onnx: the same file as graft export
if train "$T/e.gft" --base "darknet:$T/tiny.cfg" --weights none --head gap,dense:N:softmax --export-onnx "$T/e.onnx" &&
   "$G" export "$T/e.gft" --out "$T/e2.onnx" -q && cmp -s "$T/e.onnx" "$T/e2.onnx" &&
   "$G" predict --model "$T/e.gft" --json --top 3 "${IMGS[@]}" >"$T/pred.jsonl" 2>"$T/err" &&
   "$PY" "$CHK" "$T/e.onnx" "$T/pred.jsonl" "$RT" >"$T/chk" 2>&1; then pass train_export_onnx
else fail train_export_onnx "$(cat "$T/terr" "$T/chk" 2>/dev/null | tail -5)"; fi
"$G" train --base "darknet:$T/tiny.cfg" --weights none --data "$T/fold" --epochs 1 --out "$T/f.gft" \
  --export-onnx "$T/nodir/f.onnx" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -ne 0 ] && clean_fail $rc "$T/err" "nodir" && ! [ -e "$T/f.gft" ]; then pass train_export_onnx_unwritable
else fail train_export_onnx_unwritable "rc=$rc $(cat "$T/err")"; fi

# the metadata a user needs: layout, recipe, class names, graft's version
if "$PY" - "$T/export_darknet_flatten_head.onnx" <<'EOF'
import json, onnx, sys
m = onnx.load(sys.argv[1])
md = {p.key: p.value for p in m.metadata_props}
assert md["graft.input_layout"] == "NCHW" and md["graft.input_size"] == "32x32", md
assert md["graft.preprocess"] == "darknet" and md["graft.pixel_scale"] == "255", md
assert md["graft.mean"] == "0,0,0" and md["graft.std"] == "1,1,1" and md["graft.channel_order"] == "RGB", md
assert md["graft.resize"] == "letterbox" and md["graft.output"] == "probabilities", md
assert json.loads(md["class_names"]) == ["blue", "green", "red"], md
assert m.producer_name == "graft" and md["producer"].startswith("graft "), md
assert [o.name for o in m.graph.output] == ["output"] and [i.name for i in m.graph.input] == ["input"]
EOF
then pass export_metadata; else fail export_metadata "see above"; fi

# round trip: graft imports its own export as a base with its classifier and predicts the same
train "$T/r.gft" --base "darknet:$T/tiny.cfg" --weights none --no-standardize --head flatten,dense:16:relu,dense:N:softmax &&
if "$G" export "$T/r.gft" --out "$T/r.onnx" -q 2>"$T/err" &&
   "$G" predict --model "$T/r.gft" --json --top 3 "${IMGS[@]}" >"$T/p1" 2>"$T/err" &&
   "$G" predict --base "onnx:$T/r.onnx" --preprocess darknet --resize letterbox --interpolation darknet \
     --json --top 3 "${IMGS[@]}" >"$T/p2" 2>"$T/err" &&
   "$PY" - "$T/p1" "$T/p2" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 18
d = 0
for x, y in zip(a, b):
    px = {t["index"]: t["prob"] for t in x["top"]}
    py = {t["index"]: t["prob"] for t in y["top"]}
    assert px.keys() == py.keys()
    d = max(d, max(abs(px[k] - py[k]) for k in px))
assert d <= 1e-5, d
print("  round trip max_abs_diff=%.3g" % d)
EOF
then pass export_round_trip; else fail export_round_trip "$(tail -3 "$T/err")"; fi

# ---- bad inputs: a clean error, a non-zero exit, no file left, an existing --out untouched
echo old >"$T/keep.onnx"
head -c 300 "$T/a.gft" >"$T/trunc.gft"
printf 'not a model at all' >"$T/junk.gft"
bad() {   # bad NAME EXPECTED-RC TEXT ARGS...
  local name=$1 want=$2 text=$3; shift 3
  "$G" export "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ "$rc" -eq "$want" ] && clean_fail "$rc" "$T/err" "$text" && [ "$(cat "$T/keep.onnx")" = old ] &&
     ! ls "$T" | grep -q '\.tmp\.' && ! [ -e "$T/new.onnx" ]; then pass "$name"
  else fail "$name" "rc=$rc $(cat "$T/err")"; fi
}
bad export_missing_model 1 "nope.gft" "$T/nope.gft" --out "$T/new.onnx"
bad export_truncated_model 1 "trunc.gft" "$T/trunc.gft" --out "$T/keep.onnx"
bad export_corrupt_model 1 "junk.gft" "$T/junk.gft" --out "$T/keep.onnx"
bad export_unwritable_out 1 "nodir" "$T/a.gft" --out "$T/nodir/new.onnx"
bad export_out_is_dir 2 "directory" "$T/a.gft" --out "$T"
bad export_out_is_model 2 "" "$T/a.gft" --out "$T/a.gft"
bad export_opset_low 2 "opset 10" "$T/a.gft" --out "$T/new.onnx" --opset 10
bad export_opset_high 2 "opset 19" "$T/a.gft" --out "$T/new.onnx" --opset 19
bad export_opset_text 2 "--opset" "$T/a.gft" --out "$T/new.onnx" --opset x
bad export_batch_bad 2 "--batch" "$T/a.gft" --out "$T/new.onnx" --batch 0
bad export_no_out 2 "--out" "$T/a.gft"
bad export_no_model 2 "which model" --out "$T/new.onnx"
[ -s "$T/a.gft" ] && pass export_model_untouched || fail export_model_untouched "a.gft is gone"
