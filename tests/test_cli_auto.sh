#!/usr/bin/env bash
# graft train --cut auto and --base B1,B2: the probe's choice is printed,
# trained on and saved; bad lists are clean errors.  Real weights from
# $GRAFT_DATA (Tiny Darknet, MobileNet v1 0.25 TFLite); skips without them.
D="$GRAFT_DATA/weights/darknet-tiny"; T="$GRAFT_DATA/weights/coral-tflite"
data="$GRAFT_DATA/cifar-10-extra/train_first200_lossless.bin"
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
export GRAFT_HOME="$w/home"
check() { if [ "$2" = 0 ]; then echo "PASS $1"; else echo "FAIL $1"; sed 's/^/    /' "$w/out" | tail -8 >&2; fi; }
if [ ! -f "$D/tiny.weights" ] || [ ! -f "$data" ] || [ ! -f "$T/mobilenet_v1_0.25_128_quant.tflite" ]; then
    for t in cut_auto base_list base_list_bad_weights; do echo "SKIP $t: real weights/data absent under $GRAFT_DATA"; done
    exit 0
fi
"$GRAFT_BIN" train --base "darknet:$D/tiny.cfg" --weights "$D/tiny.weights" --data "$data" --cut auto \
    --epochs 1 --out "$w/a.gft" >"$w/out" 2>&1; rc=$?
chosen=$(sed -n "s/^--cut auto: '\([^']*\)'.*/\1/p" "$w/out")
ok=1
[ $rc -eq 0 ] && [ -n "$chosen" ] && grep -q "<- chosen" "$w/out" && [ -f "$w/a.gft" ] || ok=0
# the saved model was cut there: its last frozen layer is the chosen one
"$GRAFT_BIN" info "$w/a.gft" >"$w/info" 2>&1 || ok=0
grep -q "Training .* the frozen part ends at '$chosen'" "$w/out" || ok=0
check cut_auto $((1 - ok))

"$GRAFT_BIN" train --base "darknet:$D/tiny.cfg,tflite:$T/mobilenet_v1_0.25_128_quant.tflite" \
    --weights "$D/tiny.weights,imagenet" --data "$data" --epochs 1 --out "$w/b.gft" >"$w/out" 2>&1; rc=$?
ok=1
[ $rc -eq 0 ] && grep -q "^--base: '" "$w/out" && [ "$(grep -c 'ridge' "$w/out")" -ge 2 ] && [ -f "$w/b.gft" ] || ok=0
check base_list $((1 - ok))

"$GRAFT_BIN" train --base "darknet:$D/tiny.cfg,vgg16,resnet50" --weights "a,b" --data "$data" \
    --epochs 1 --out "$w/c.gft" >"$w/out" 2>&1; rc=$?
ok=1
[ $rc -ne 0 ] && grep -q "graft: error: --weights: give one value or one per base" "$w/out" && [ ! -f "$w/c.gft" ] || ok=0
check base_list_bad_weights $((1 - ok))
