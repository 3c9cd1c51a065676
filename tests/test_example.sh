#!/usr/bin/env bash
# The seed example (examples/seed_cifar10.c) runs end to end: VGG16 base with
# random weights (none are reachable here), 1 epoch on 200 real CIFAR images.
dir=$(dirname "$GRAFT_BIN")
ex="$dir/examples/seed_cifar10"
data="$GRAFT_DATA/cifar-10-extra/train_first200_lossless.bin"
if [ ! -x "$ex" ]; then echo "SKIP example_runs: $ex not built in this build"; exit 0; fi
if [ ! -f "$data" ]; then echo "SKIP example_runs: $data absent"; exit 0; fi
out=$("$ex" none "$data" 1 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q '^Test accuracy: 0\.[0-9]*$' <<<"$out" && grep -q '^Epoch 1/1' <<<"$out"; then
    echo "PASS example_runs"
else
    echo "FAIL example_runs (exit $rc)"; echo "$out" | tail -5 >&2
fi
out=$("$ex" /nonexistent.h5 "$data" 1 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q 'nonexistent.h5' <<<"$out"; then echo "PASS example_bad_weights"; else echo "FAIL example_bad_weights"; fi
