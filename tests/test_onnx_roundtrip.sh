#!/usr/bin/env bash
# test_onnx_roundtrip.sh — graft's own ONNX export imported back as a base,
# the graft.* metadata it carries, and cutting an ONNX base by its names:
#   - round trip: tiny models trained with the default recipe (the
#     standardize layer on, on a map and on a flat vector), heads with every
#     activation (relu6, hardswish, hardsigmoid, swish, gelu), a fine-tuned
#     ViT (class token, position embedding, attention, layer norm over tokens), and a TFLite
#     MobileNet v1 (relu6 everywhere; SKIP without ../shared/data): `graft
#     predict --base onnx:EXPORT.onnx` (no recipe option) equals `graft predict
#     --model M.gft` within 1e-5, class names included; the layers come back
#     as they were (standardize, conv2d+relu6);
#   - metadata: the recipe comes from the file with a note saying so, an
#     explicit option overrides it, a file without metadata gets torchvision's
#     recipe and a note; bad metadata values are clean errors naming the key;
#   - --cut / extract --layer by ONNX tensor or node name (the same features
#     as the graft layer name), an unknown name lists the cut candidates,
#     graft info --base lists them; extract without --layer takes the base's
#     default cut (ONNX, darknet cfg, TFLite bases).
set -u
. "$(dirname "$0")/lib.sh"
need_numpy_pil onnx_roundtrip "to make the test images"
if ! "$PY" -c 'import onnx' 2>/dev/null; then
  echo "SKIP onnx_roundtrip: python3-onnx is needed (scripts/deps.sh test installs it)"; exit 0
fi
FX=tests/fixtures/onnx
"$PY" "$GEN" folder "$T/fold" 6 3 || { echo "FAIL onnx_roundtrip_setup: gen_cli.py"; exit 1; }
IMGS=("$T"/fold/*/*.png)
CFG=tests/fixtures/cli/tiny.cfg   # conv+bn+leaky+maxpool x2: an 8x8x16 map

train() {   # train OUT OPTIONS... (2 epochs on the 3-class folder, quiet)
  local out=$1; shift
  "$G" train "$@" --data "$T/fold" --epochs 2 --out "$out" -q >"$T/tout" 2>"$T/terr" ||
    { echo "FAIL onnx_roundtrip_train: $(tail -5 "$T/terr")"; return 1; }
}

# same P1 P2: the same top classes (labels too) and probabilities within 1e-5
same() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 18, (len(a), len(b))
d = 0
for x, y in zip(a, b):
    px = {t["index"]: (t["label"], t.get("prob", t.get("score"))) for t in x["top"]}
    py = {t["index"]: (t["label"], t.get("prob", t.get("score"))) for t in y["top"]}
    assert px.keys() == py.keys(), (px, py)
    for k in px:
        assert px[k][0] == py[k][0] and px[k][0], (px[k], py[k])
        d = max(d, abs(px[k][1] - py[k][1]))
assert d <= 1e-5, d
print("  max |difference| = %.3g" % d)
EOF
}

# roundtrip NAME MODEL.gft [info ERE...]: export, predict both ways, compare; the imported layers match the EREs
roundtrip() {
  local name=$1 model=$2; shift 2
  if ! "$G" export "$model" --out "$T/$name.onnx" -q 2>"$T/err"; then fail "$name" "export: $(cat "$T/err")"; return; fi
  "$G" predict --model "$model" --json --top 3 "${IMGS[@]}" >"$T/p1" 2>"$T/err" || { fail "$name" "$(cat "$T/err")"; return; }
  if ! "$G" predict --base "onnx:$T/$name.onnx" --json --top 3 "${IMGS[@]}" >"$T/p2" 2>"$T/err"; then
    fail "$name" "predict --base: $(cat "$T/err")"; return
  fi
  if ! same "$T/p1" "$T/p2" >"$T/same" 2>&1; then fail "$name" "$(cat "$T/same")"; return; fi
  "$G" info --base "onnx:$T/$name.onnx" --include-top >"$T/info" 2>"$T/err"
  local ere
  for ere in "$@"; do has "$T/info" "$ere" || { fail "$name" "no layer like '$ere' in: $(cat "$T/info")"; return; }; done
  pass "$name"; cat "$T/same"
}

# the default standardize layer on the 8x8x16 map, then a flatten head (permuted rows)
train "$T/a.gft" --base "darknet:$CFG" --weights none --head flatten,dense:16:relu,dense:N:softmax &&
  roundtrip onnx_roundtrip_standardize_map "$T/a.gft" ' standardize +\(None, 8, 8, 16\) +2048' ' flatten '
# every activation graft exports through HardSigmoid, Sigmoid and Erf
HEAD=flatten,dense:16:relu6,dense:16:hardswish,dense:16:hardsigmoid,dense:16:swish,dense:16:gelu,dense:N:softmax
train "$T/b.gft" --base "darknet:$CFG" --weights none --head "$HEAD" &&
  roundtrip onnx_roundtrip_activations "$T/b.gft" 'dense\+relu6' 'dense\+hardswish' 'dense\+hardsigmoid' \
    'dense\+swish' 'dense\+gelu'
# standardize on a flat vector (after a global average pool cut)
train "$T/c.gft" --base "darknet:$CFG" --weights none --cut 3 --head gap,dense:N:softmax &&
  roundtrip onnx_roundtrip_gap_head "$T/c.gft" ' standardize +\(None, 8, 8, 16\)'
# a ViT base fine-tuned from its last encoder layer: the token ops and the attention come back as
# they were (the layer norms over tokens with their gamma and beta, the head split into 4 heads)
train "$T/v.gft" --base onnx:tests/fixtures/onnx/vit.onnx --resize stretch --head dense:N:softmax \
    --unfreeze encoder_layer_1 &&
  roundtrip onnx_roundtrip_vit "$T/v.gft" ' class_token +\(None, 1, 17, 32\) +32' \
    ' position_embedding +\(None, 1, 17, 32\) +544' \
    '^11 +encoder/layers/encoder_layer_1/self_attention +self_attention +\(None, 1, 17, 32\) +4224' \
    '^17 +encoder/ln/[A-Za-z_0-9/]+ +layer_normalization +\(None, 1, 17, 32\) +64' ' select_token +\(None, 32\)'
if [ -s "$T/onnx_roundtrip_vit.onnx" ] && [ "$(grep -c ' layer_normalization ' "$T/info")" -eq 5 ] &&
   ! has "$T/info" ' conv2d +\(None, 1, 17, 32\) +32 '; then pass onnx_roundtrip_vit_layernorm_affine
else fail onnx_roundtrip_vit_layernorm_affine "$(cat "$T/info")"; fi
M=$DATA/weights/coral-tflite/mobilenet_v1_0.25_128_quant.tflite
if [ -r "$M" ]; then
  train "$T/t.gft" --base "tflite:$M" --input-size 64 --head dense:N:softmax &&
    roundtrip onnx_roundtrip_tflite_mobilenet "$T/t.gft" 'Conv2d_0/Relu6/Conv_[0-9]+ +conv2d\+relu6' \
      'Conv2d_13_pointwise/Relu6/Conv_[0-9]+ +conv2d\+relu6' ' standardize +\(None, 256\)'
  if [ -s "$T/onnx_roundtrip_tflite_mobilenet.onnx" ] && ! has "$T/info" ' (conv2d|activation:[a-z0-9]+) +\(' &&
     [ "$(grep -c 'conv2d+relu6' "$T/info")" -eq 27 ]; then pass onnx_roundtrip_tflite_relu6_fused
  else fail onnx_roundtrip_tflite_relu6_fused "$(cat "$T/info")"; fi
else echo "SKIP onnx_roundtrip_tflite_mobilenet: no $M"; fi

# ---- metadata: the recipe and the class names the export carries
E=$T/onnx_roundtrip_standardize_map.onnx
"$G" predict --base "onnx:$E" "${IMGS[0]}" >"$T/out" 2>"$T/err"
if has "$T/out" "^note: the input recipe is the one .* carries \(graft metadata\): resize letterbox, darknet interpolation, darknet normalization" &&
   has "$T/out" '^ +[0-9.]+% +(blue|green|red) \([0-9]\)$'; then pass onnx_meta_recipe_note
else fail onnx_meta_recipe_note "$(cat "$T/out" "$T/err")"; fi
"$G" info --base "onnx:$E" >"$T/out" 2>"$T/err"
if has "$T/out" "^input recipe: resize letterbox, darknet interpolation, darknet normalization"; then pass onnx_meta_info
else fail onnx_meta_info "$(cat "$T/out" "$T/err")"; fi
# an explicit option overrides the file's recipe (same numbers as the model file with the same override)
"$G" predict --base "onnx:$E" --preprocess torch --json --top 3 "${IMGS[@]}" >"$T/p2" 2>"$T/err" &&
"$G" predict --model "$T/a.gft" --preprocess torch --json --top 3 "${IMGS[@]}" >"$T/p1" 2>>"$T/err" &&
"$G" predict --model "$T/a.gft" --json --top 3 "${IMGS[@]}" >"$T/p0" 2>>"$T/err"
if same "$T/p1" "$T/p2" >/dev/null 2>&1 && ! same "$T/p0" "$T/p2" >/dev/null 2>&1; then pass onnx_meta_override
else fail onnx_meta_override "$(cat "$T/err")"; fi
# training on the export as a base takes its recipe
"$G" train --base "onnx:$E" --data "$T/fold" --epochs 1 --head dense:N:softmax --out "$T/e.gft" >"$T/out" 2>"$T/err" &&
  "$G" info "$T/e.gft" >"$T/info" 2>>"$T/err"
if has "$T/out" "^note: the input recipe is the one" && has "$T/info" "resize letterbox, darknet interpolation, darknet normalization"
then pass onnx_meta_train; else fail onnx_meta_train "$(tail -5 "$T/out") $(cat "$T/err")"; fi
# no metadata: torchvision's recipe, said
"$G" predict --base "onnx:$FX/small.onnx" "${IMGS[0]}" >"$T/out" 2>"$T/err"
if has "$T/out" "^note: .*small.onnx has no graft.\* preprocessing metadata .*torchvision's ImageNet recipe \(resize crop 0.875, bilinear, torch normalization\)"
then pass onnx_meta_default; else fail onnx_meta_default "$(cat "$T/out" "$T/err")"; fi
# bad values: clean errors naming the key
meta_bad() {   # NAME KEY VALUE TEXT
  "$PY" - "$E" "$T/$1.onnx" "$2" "$3" <<'EOF'
import onnx, sys
m = onnx.load(sys.argv[1])
for p in m.metadata_props:
    if p.key == sys.argv[3]:
        p.value = sys.argv[4]
onnx.save(m, sys.argv[2])
EOF
  "$G" predict --base "onnx:$T/$1.onnx" "${IMGS[0]}" >"$T/out" 2>"$T/err"; local rc=$?
  if clean_fail $rc "$T/err" "$1.onnx: metadata $4"; then pass "onnx_meta_bad_$1"
  else fail "onnx_meta_bad_$1" "rc=$rc $(cat "$T/err")"; fi
}
meta_bad prep graft.preprocess bogus "graft.preprocess 'bogus' is not a normalization graft knows"
meta_bad mean graft.mean 0.5,0.5,0.5 "graft.preprocess 'darknet' disagrees with"
meta_bad resize graft.resize zoom "graft.resize 'zoom' is not a resize mode"
meta_bad crop graft.crop_fraction 1.5 "graft.crop_fraction '1.5' is not a fraction"
meta_bad classes class_names '{"a": 1}' "class_names is not a JSON array of strings"

# ---- cutting an ONNX base by its names
"$G" info --base "onnx:$FX/small.onnx" >"$T/info" 2>"$T/err"
if has "$T/info" "^cut candidates \(--cut NAME, extract --layer NAME; the ONNX tensor or node name works too\):" &&
   has "$T/info" "^  4 +Add +16x16x8  tensor '/Relu_2_output_0'$" &&
   has "$T/info" "^  8 +GlobalAveragePool +1x1x16  tensor '/Reshape_output_0'  \(the default cut\)$"
then pass onnx_cut_candidates; else fail onnx_cut_candidates "$(cat "$T/info" "$T/err")"; fi
ext() {   # OUT ARGS...: extract from the folder; prints nothing
  local out=$1; shift
  "$G" extract --data "$T/fold" --out "$T/$out.npy" "$@" >"$T/$out.txt" 2>"$T/err"
}
if ext x1 --base "onnx:$FX/small.onnx" --layer Add && ext x2 --base "onnx:$FX/small.onnx" --layer /Relu_2_output_0 &&
   ext x3 --base "onnx:$FX/small.onnx" --layer /Relu_2 && cmp -s "$T/x1.npy" "$T/x2.npy" && cmp -s "$T/x1.npy" "$T/x3.npy" &&
   has "$T/x2.txt" "18 x 16 x 16 x 8 float32 \(layer 'Add'\)"; then pass onnx_cut_by_tensor_name
else fail onnx_cut_by_tensor_name "$(cat "$T/x2.txt" "$T/err")"; fi
if ext x4 --base "onnx:$FX/small.onnx" --layer /pw/Conv && ext x5 --base "onnx:$FX/small.onnx" --layer pw/Conv &&
   cmp -s "$T/x4.npy" "$T/x5.npy"; then pass onnx_cut_by_node_name
else fail onnx_cut_by_node_name "$(cat "$T/err")"; fi
"$G" train --base "onnx:$FX/small.onnx" --cut /Relu_2_output_0 --data "$T/fold" --epochs 1 --head gap,dense:N:softmax \
  --out "$T/k.gft" >"$T/out" 2>"$T/err"
if [ $? -eq 0 ] && has "$T/out" "frozen part ends at 'Add'"; then pass onnx_train_cut_by_tensor_name
else fail onnx_train_cut_by_tensor_name "$(tail -5 "$T/out") $(cat "$T/err")"; fi
"$G" train --base "onnx:$FX/small.onnx" --cut /no/such/tensor --data "$T/fold" --epochs 1 --out "$T/k2.gft" >"$T/out" 2>"$T/err"
rc=$?
if clean_fail $rc "$T/err" "--cut: base 'onnx:$FX/small.onnx' has no layer '/no/such/tensor' \(nor an ONNX node or tensor of that name\); cut candidates: 'pool/MaxPool' \(/pool/MaxPool_output_0\), 'Add' \(/Relu_2_output_0\)" &&
   ! [ -e "$T/k2.gft" ]; then pass onnx_cut_unknown
else fail onnx_cut_unknown "rc=$rc $(cat "$T/err")"; fi
ext x6 --base "darknet:$CFG" --weights none --layer nope; rc=$?
if clean_fail $rc "$T/err" "--layer: base 'darknet:$CFG' has no layer 'nope'; cut candidates: '1', '3'"; then
  pass extract_layer_unknown; else fail extract_layer_unknown "rc=$rc $(cat "$T/err")"; fi

# ---- extract without --layer: the default cut, for every kind of base
if ext d1 --base "onnx:$FX/small.onnx" && has "$T/d1.txt" "18 x 1 x 1 x 16 float32 \(layer 'GlobalAveragePool'\)"
then pass extract_default_cut_onnx; else fail extract_default_cut_onnx "$(cat "$T/d1.txt" "$T/err")"; fi
if ext d2 --base "darknet:$CFG" --weights none && has "$T/d2.txt" "18 x 8 x 8 x 16 float32 \(layer '3'\)"
then pass extract_default_cut_darknet; else fail extract_default_cut_darknet "$(cat "$T/d2.txt" "$T/err")"; fi
if [ -r "$M" ]; then
  if ext d3 --base "tflite:$M" --input-size 64 && has "$T/d3.txt" "18 x 1 x 1 x 256 float32 \(layer 'MobilenetV1/Logits/AvgPool_1a/AvgPool'\)"
  then pass extract_default_cut_tflite; else fail extract_default_cut_tflite "$(cat "$T/d3.txt" "$T/err")"; fi
fi
