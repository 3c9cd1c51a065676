#!/usr/bin/env bash
# test_vit_torch2.sh — the small ViT of tests/fixtures/gen_onnx_vit.py
# exported by a real current PyTorch (torch 2.x: the TorchScript exporter at
# opsets 14 and 17, with a symbolic batch, and the dynamo exporter at opset
# 18; tests/fixtures/export_vit_torch2.py), each imported by graft and
# compared with that PyTorch's logits and pre-logits features (test_onnx's
# parity: within 1e-4 of the largest value).  Needs a venv with torch and
# torchvision (bench/peers.sh setup makes $B/peers-venv; PEERS_VENV=DIR for
# another): SKIP with a message without one.  The committed fixtures
# vit_t2.onnx / vit_t2d.onnx (gen_onnx_vit2.py, Debian's Python) test the
# same forms everywhere.
set -u
. "$(dirname "$0")/lib.sh"
VENV=${PEERS_VENV:-${B:-build}/peers-venv}
TO=$(dirname "$G")/tests/test_onnx
if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, torchvision, onnx' 2>/dev/null; then
  echo "SKIP vit_torch2: no venv with torch, torchvision and onnx at $VENV (bench/peers.sh setup makes one)"
  exit 0
fi
[ -x "$TO" ] || { fail vit_torch2 "no $TO (make tests-built)"; exit 0; }
# the exports (half a minute) are kept in $X for the next run (the sanitizer
# suite's) while the scripts that make them and the venv's torch are older
X=${B:-build}/vit-torch2
if ! [ -s "$X/log" ] || [ tests/fixtures/export_vit_torch2.py -nt "$X/log" ] || [ tests/fixtures/gen_onnx_vit.py -nt "$X/log" ] \
   || [ "$VENV/bin/python" -nt "$X/log" ]; then
  rm -rf "$X" && mkdir -p "$X" || { fail vit_torch2 "cannot make $X"; exit 0; }
  "$VENV/bin/python" tests/fixtures/export_vit_torch2.py "$X" >"$T/log" 2>"$T/err"
  [ $? -eq 0 ] || { fail vit_torch2_export "see below"; tail -5 "$T/err"; exit 0; }
  mv "$T/log" "$X/log"
fi
sed -n 's/^skipped \([a-z0-9_]*\): /SKIP vit_torch2_\1: /p' "$X/log"
for n in $(sed -n 's/^exported \([a-z0-9_]*\) .*/\1/p' "$X/log"); do
  if "$TO" "$n" "$X" 32 10 32 >"$T/$n.txt" 2>&1 && ! grep -q '^FAIL' "$T/$n.txt"; then
    pass "vit_torch2_$n: $(grep -m1 "^exported $n" "$X/log" | cut -d' ' -f3- | tr -d '()'), logits $(grep -m1 'logits' "$T/$n.txt" | sed 's/.*: //')"
  else
    fail "vit_torch2_$n" "see below"; cat "$T/$n.txt"
  fi
done
