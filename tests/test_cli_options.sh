#!/usr/bin/env bash
# test_cli_options.sh — what every command has in common (issue 12):
#   - exit status 2 for a usage error (an unknown option, also as the last
#     argument, a bad value) with "unknown option" named, 1 for a runtime
#     error (a missing file), in every command; documented in graft --help;
#   - every command takes --json and --quiet; --json output is valid JSON;
#   - every command that reads data takes the same data options;
#   - the messages a new user found unclear: --unfreeze above the cut names
#     the cut and the range.
set -u
. "$(dirname "$0")/lib.sh"
CFG=tests/fixtures/cli/tiny.cfg
NO=$T/no/such

# ---- usage errors: exit 2, the option named
bad=""
for cmd in fetch info extract predict train eval probe; do
  for args in "--bogus" "--bogus x" "--bogus --help"; do
    "$G" $cmd $args >"$T/out" 2>"$T/err"; rc=$?
    if ! { [ $rc -eq 2 ] && has "$T/err" "^graft: error: .*unknown option '--bogus'" && clean "$T/err"; }; then
      bad="$bad [$cmd $args: rc=$rc $(head -2 "$T/err")]"
    fi
  done
done
# bad values of shared options are usage errors too
for c in "eval --model m --data d --split dev" "extract --base vgg16 --data d --layer x --out o --format xml" \
         "probe --base vgg16 --data d --input-size 0x3" "train --base vgg16 --data d --resize fill" \
         "predict --model m --crop-fraction 1.5 x.png" "train --base vgg16" "eval --data d" "info"; do
  "$G" $c >"$T/out" 2>"$T/err"; rc=$?
  [ $rc -eq 2 ] && has "$T/err" "^graft: error: " && clean "$T/err" || bad="$bad [$c: rc=$rc $(head -2 "$T/err")]"
done
if [ -z "$bad" ]; then pass options_usage_exit_2; else fail options_usage_exit_2 "$bad"; fi

# ---- runtime errors: exit 1, the file named
mkdir -p "$T/h"
bad=""
while IFS= read -r c; do
  GRAFT_HOME=$T/h GRAFT_MIRROR=$T/h GRAFT_OFFLINE=1 "$G" $c >"$T/out" 2>"$T/err"; rc=$?
  [ $rc -eq 1 ] && has "$T/err" "^graft: error: " && clean "$T/err" || bad="$bad [$c: rc=$rc $(head -2 "$T/err")]"
done <<EOF
fetch --offline vgg16
info $NO.h5
extract --base darknet:$NO.cfg --weights none --data $NO --layer 1 --out $T/o.npy
predict --model $NO.gft $NO.png
train --base darknet:$CFG --weights none --data $NO -q
eval --model $NO.gft --data $NO
probe --base darknet:$CFG --weights none --data $NO -q
EOF
if [ -z "$bad" ]; then pass options_runtime_exit_1; else fail options_runtime_exit_1 "$bad"; fi

"$G" --help >"$T/out" 2>&1
if has "$T/out" "^exit status: 0 success, 1 runtime error" && has "$T/out" "2 usage error"; then pass options_help_exit_codes
else fail options_help_exit_codes "$(cat "$T/out")"; fi

# ---- every command has --json and --quiet, and the data options where it reads data
bad=""
for cmd in fetch info extract predict train eval probe; do
  "$G" $cmd --help >"$T/help" 2>&1
  for o in --json --quiet; do has "$T/help" "$o" || bad="$bad [$cmd: no $o]"; done
  case $cmd in extract|train|eval|probe)
    for o in --format --labels --split --skip-bad --crop --input-size --resize --interpolation --preprocess; do
      has "$T/help" "$o" || bad="$bad [$cmd: no $o]"; done;;
  esac
done
if [ -z "$bad" ]; then pass options_every_command_json_quiet_data; else fail options_every_command_json_quiet_data "$bad"; fi

if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy, PIL' 2>/dev/null; then
  echo "SKIP options_json: /usr/bin/python3 with numpy and PIL is needed to make the test data"
  exit 0
fi
"$PY" tests/fixtures/gen_cli.py cifar "$T/train.bin" 100 1 || { echo "FAIL options_setup: gen_cli.py"; exit 1; }
B=(--base "darknet:$CFG" --weights none)
bad=""
"$G" train "${B[@]}" --data "$T/train.bin" --head flatten,dense:10:softmax --epochs 1 --out "$T/m.gft" --test "$T/train.bin" \
  --json >"$T/train.json" 2>"$T/err" || bad="$bad [train: $(cat "$T/err")]"
"$G" eval --model "$T/m.gft" --data "$T/train.bin" --split train --json >"$T/eval.json" 2>"$T/err" || bad="$bad [eval: $(cat "$T/err")]"
"$G" info "$T/m.gft" --json >"$T/info.json" 2>"$T/err" || bad="$bad [info: $(cat "$T/err")]"
"$G" info "${B[@]:0:2}" --json >"$T/infob.json" 2>"$T/err" || bad="$bad [info --base: $(cat "$T/err")]"
"$G" extract "${B[@]}" --data "$T/train.bin" --layer 1 --out "$T/f.npy" --json >"$T/extract.json" 2>"$T/err" \
  || bad="$bad [extract: $(cat "$T/err")]"
if [ -z "$bad" ] && "$PY" - "$T" <<'EOF'
import json, sys
t = sys.argv[1]
lines = [json.loads(l) for l in open(t + "/train.json")]   # train --json: JSON lines, the result last
tr = lines[-1]; assert tr["event"] == "result" and all(l["event"] == "epoch" for l in lines[:-3]), lines
ev = json.load(open(t + "/eval.json"))
info = json.load(open(t + "/info.json")); ib = json.load(open(t + "/infob.json"))
ex = json.load(open(t + "/extract.json"))
assert tr["out"].endswith("m.gft") and tr["epochs"] == 1 and abs(tr["test_loss"] - ev["loss"]) < 1e-5, (tr, ev["loss"])
assert info["input"] == [32, 32, 3] and info["input_recipe"]["resize"] == "letterbox", info
assert ib["input_recipe"]["interpolation"] == "darknet" and ib["layers"][0]["name"] == "0/conv", ib
assert ex["shape"] == [100, 16, 16, 8], ex
EOF
then pass options_json_valid
else fail options_json_valid "$bad"; fi

# --quiet: eval prints the scores only
"$G" eval --model "$T/m.gft" --data "$T/train.bin" --split train --quiet >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && [ "$(wc -l <"$T/out")" -eq 3 ] && has "$T/out" "^Test accuracy: "; then pass options_eval_quiet
else fail options_eval_quiet "rc=$rc $(cat "$T/out" "$T/err")"; fi

# ---- --unfreeze above the cut: the cut and the allowed range are named
"$G" train "${B[@]}" --data "$T/train.bin" --cut 3 --unfreeze 5 --epochs 1 -q --out "$T/u.gft" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 1 ] && has "$T/err" "^graft: error: --unfreeze 5: .*cut at '3', so --unfreeze takes a layer from '0' to '3'" \
   && clean "$T/err"; then
  pass options_unfreeze_above_cut
else fail options_unfreeze_above_cut "rc=$rc $(cat "$T/err")"; fi
