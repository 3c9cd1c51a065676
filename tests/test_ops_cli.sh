#!/usr/bin/env bash
# test_ops_cli.sh — the op-table ops from the command line: a head with
# layernorm and the swish / hardswish / hardsigmoid / gelu activations trains
# on tiny data (tests/fixtures/gen_cli.py) over a tiny darknet base, is saved
# with those ops in its architecture (read back in python from the file's
# safetensors header), evaluates, and an unknown activation or an edited
# model file naming one is a clean "graft: error:" with a non-zero exit.
set -u
. "$(dirname "$0")/lib.sh"
need_numpy_pil ops_cli "to make the test data"
"$PY" "$GEN" cifar "$T/train.bin" 120 1 || { echo "FAIL ops_cli_setup: gen_cli.py"; exit 1; }
cp tests/fixtures/cli/tiny.cfg "$T/tiny.cfg"
BASE=(--base "darknet:$T/tiny.cfg" --weights none --data "$T/train.bin" --epochs 1 --batch 40 -q)

"$G" train "${BASE[@]}" --head flatten,layernorm,dense:16:gelu,dense:12:swish,dense:8:hardswish,dense:8:hardsigmoid,dense:N:softmax \
  --out "$T/m.gft" >"$T/out" 2>"$T/err"; rc=$?
arch=$("$PY" - "$T/m.gft" <<'PYEOF' 2>&1
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
layers = json.loads(meta["graft.architecture"])["layers"]
print(" ".join(l["op"] + ":" + l.get("activation", "-") + ":" + ("%.3g" % l["epsilon"] if "epsilon" in l else "-")
               for l in layers[-6:]))
PYEOF
)
want="layer_normalization:-:1e-05 dense:gelu:- dense:swish:- dense:hardswish:- dense:hardsigmoid:- dense:softmax:-"
if [ $rc -eq 0 ] && [ "$arch" = "$want" ]; then pass ops_cli_train_saves_ops
else fail ops_cli_train_saves_ops "rc=$rc arch='$arch' $(cat "$T/err")"; fi

"$G" eval --model "$T/m.gft" --data "$T/train.bin" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && has "$T/out" '^Test accuracy: [0-9]\.[0-9]{4}$'; then pass ops_cli_eval_loads
else fail ops_cli_eval_loads "rc=$rc $(cat "$T/out" "$T/err")"; fi

"$G" train "${BASE[@]}" --head flatten,dense:16:geluu,dense:N:softmax --out "$T/x.gft" >"$T/out" 2>"$T/err"; rc=$?
if clean_fail $rc "$T/err" && has "$T/err" "unknown activation 'geluu' \(.*gelu" && ! [ -e "$T/x.gft" ]; then
  pass ops_cli_unknown_activation
else fail ops_cli_unknown_activation "rc=$rc $(cat "$T/err")"; fi

# the same file with the activation renamed in its (escaped) architecture JSON, same length: refused, naming the layer
"$PY" - "$T/m.gft" "$T/bad.gft" <<'PYEOF'
import sys
d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d.replace(b'\\"gelu\\"', b'\\"gulu\\"', 1))
PYEOF
"$G" eval --model "$T/bad.gft" --data "$T/train.bin" >"$T/out" 2>"$T/err"; rc=$?
if clean_fail $rc "$T/err" && has "$T/err" "bad.gft: layer '.*': unknown activation 'gulu'"; then pass ops_cli_bad_activation_in_file
else fail ops_cli_bad_activation_in_file "rc=$rc $(cat "$T/err")"; fi
