#!/usr/bin/env bash
# make demo: the main job on the embedded default — Tiny Darknet (ImageNet-
# pretrained) frozen as the base, a new head trained on CIFAR-10, test score.
# Files come from the download cache ($GRAFT_HOME, default ~/.cache/graft),
# fetched from the internet or, where a local mirror exists (GRAFT_MIRROR,
# default ../shared/data on the development machines), taken from it.
set -euo pipefail
cd "$(dirname "$0")/.."
G=${GRAFT_BIN:-build/graft}
if [ -z "${GRAFT_MIRROR:-}" ] && [ -d ../shared/data ]; then
    export GRAFT_MIRROR=$(cd ../shared/data && pwd)
fi
EPOCHS=${DEMO_EPOCHS:-5}
OUT=${DEMO_OUT:-build/demo-cifar10-tiny.gft}

echo "== 1. fetch the pretrained base and the data"
$G fetch tiny-darknet cifar10

echo
echo "== 2. the pretrained network as it is: ImageNet classes of a few photos"
imgs=()
for f in ../shared/data/images/*; do [ -f "$f" ] && imgs+=("$f"); done
if [ ${#imgs[@]} -gt 0 ]; then
    $G predict --base tiny-darknet --weights imagenet --top 3 "${imgs[@]}"
else
    echo "(no photos here; skipping)"
fi

echo
echo "== 3. transfer: freeze the base up to layer 18, train a new head on CIFAR-10 ($EPOCHS epochs)"
$G train --base tiny-darknet --weights imagenet --data cifar10 --test cifar10 \
    --epochs "$EPOCHS" --batch 32 --out "$OUT"

echo
echo "== 4. the trained model on the same photos (CIFAR-10 classes)"
[ ${#imgs[@]} -gt 0 ] && $G predict --model "$OUT" --top 2 "${imgs[@]}"
echo
echo "model: $OUT   (graft eval --model $OUT --data cifar10 for the full report)"
