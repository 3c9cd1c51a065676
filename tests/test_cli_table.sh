#!/usr/bin/env bash
# test_cli_table.sh — the option tables (src/cli/opts.c): --help and the
# parser come from one table per command, so what --help shows is what the
# parser takes, checked here from the outside (the binary's behaviour):
#   - every option --help lists is known to the parser (never "unknown option");
#   - an option shown with a value (--epochs N) wants one: given last, exit 2
#     "needs a value"; one shown without (--augment) refuses "--augment=x";
#   - --name=value is --name value; bad values name what was expected (the
#     enum's names, the integer's range), exit 2; --help exits 0 on stdout.
set -u
. "$(dirname "$0")/lib.sh"
CMDS="fetch info extract predict train eval probe report export cache"

# ---- every option of --help is an option of the parser; value or not as shown
bad=""; n=0
for cmd in $CMDS; do
  "$G" $cmd --help >"$T/help" 2>"$T/err"; rc=$?
  { [ $rc -eq 0 ] && [ -s "$T/help" ] && ! [ -s "$T/err" ]; } || bad="$bad [$cmd --help: rc=$rc]"
  # option lines: "  --name META ..." (a value) or "  --name   help" (a flag); "-q, --quiet" too
  grep -E '^  (-[a-z], )?--[a-z0-9-]+' "$T/help" | sed -E 's/^  (-[a-z], )?//' >"$T/lines"
  while IFS= read -r line; do
    opt=${line%% *}
    [ "$opt" = --help ] && continue   # (-h, --help: not an option of the table)
    n=$((n + 1))
    if [[ "$line" =~ ^--[a-z0-9-]+\ [^\ ] ]]; then   # "--epochs N": a value; "--augment   help": none
      "$G" $cmd "$opt" >"$T/out" 2>"$T/err"; rc=$?
      { [ $rc -eq 2 ] && has "$T/err" "^graft: error: $opt needs a value" && clean "$T/err"; } ||
        bad="$bad [$cmd $opt (last): rc=$rc $(head -1 "$T/err")]"
    else
      "$G" $cmd "$opt=x" >"$T/out" 2>"$T/err"; rc=$?
      { [ $rc -eq 2 ] && has "$T/err" "^graft: error: $opt takes no value" && clean "$T/err"; } ||
        bad="$bad [$cmd $opt=x: rc=$rc $(head -1 "$T/err")]"
    fi
  done <"$T/lines"
done
if [ -z "$bad" ] && [ $n -gt 100 ]; then pass "table_help_is_the_parser ($n options)"; else fail table_help_is_the_parser "n=$n$bad"; fi

# ---- bad values: exit 2, the value and what was expected named
bad=""
while IFS='|' read -r args want; do
  "$G" $args >"$T/out" 2>"$T/err"; rc=$?
  { [ $rc -eq 2 ] && has "$T/err" "^graft: error: $want" && clean "$T/err" && ! [ -s "$T/out" ]; } ||
    bad="$bad [$args: rc=$rc $(head -1 "$T/err")]"
done <<'EOF2'
train --base vgg16 --data d --optimizer rmsprop|--optimizer 'rmsprop': expected sgd, adam or adamw
train --base vgg16 --data d --lr-schedule=linear|--lr-schedule 'linear': expected constant, inverse-time, step or cosine
train --base vgg16 --data d --epochs=0|--epochs '0': expected a positive integer
train --base vgg16 --data d --threads -1|--threads '-1': expected a non-negative integer
train --base vgg16 --data d --seed -3|--seed '-3': expected a non-negative integer
train --base vgg16 --data d --lr 1e9x|--lr '1e9x': expected a non-negative number
train --base vgg16 --data d --momentum nan|--momentum 'nan': expected a non-negative number
train --base vgg16 --data d --monitor acc|--monitor 'acc': expected val_accuracy or val_loss
train --base vgg16 --data d --keep first|--keep 'first': expected best or last
train --base vgg16 --data d --loss mse|--loss 'mse': expected categorical or sparse
extract --base vgg16 --data d --layer x --out o --precision fp16|--precision 'fp16': expected fp32 or bf16
probe --base vgg16 --data d --folds=1|--folds '1': expected an integer >= 2
eval --model m --data d --format=xml|--format 'xml': expected auto, cifar10, cifar100, folder or csv
eval --model m --data d --labels medium|--labels 'medium': expected fine or coarse
eval --model m --data d --resize fill|--resize 'fill': expected stretch, crop or letterbox
predict --model m --interpolation cubic x.png|--interpolation 'cubic': expected bilinear or darknet
predict --model m --preprocess imagenet x.png|--preprocess 'imagenet': expected none, caffe, torch, tf or darknet
predict --model m --input-size 3y x.png|--input-size '3y': expected HxW
info --base vgg16 --input-size=0x4|--input-size '0x4': expected HxW
fetch --mirror|--mirror needs a value
report a b|one RUN_DIR
report --bogus|unknown option '--bogus'
probe --base vgg16 extra --data d|unexpected argument 'extra'
EOF2
if [ -z "$bad" ]; then pass table_bad_values_exit_2; else fail table_bad_values_exit_2 "$bad"; fi

# ---- --name=value is --name value: the same settings reach the run (the
# same usage error, which train finds after parsing every option)
"$G" train --base=vgg16 --data=d --val-split=0.2 --patience=2 --warmup=30 >"$T/a" 2>&1; rc1=$?
"$G" train --base vgg16 --data d --val-split 0.2 --patience 2 --warmup 30 >"$T/b" 2>&1; rc2=$?
if [ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && cmp -s "$T/a" "$T/b" && has "$T/a" "^graft: error: --warmup 30: the run has 20 epochs"; then
  pass table_equals_form
else fail table_equals_form "rc=$rc1/$rc2 $(cat "$T/a" "$T/b")"; fi
