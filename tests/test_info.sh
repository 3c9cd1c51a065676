#!/usr/bin/env bash
# test_info.sh — `graft info`: a weights file's format, tensors and parameter
# count (the committed tiny fixtures made by tests/fixtures/gen_weights.py),
# a base's layer table (--base vgg16: Keras' published parameter counts),
# loading with --weights, and clean errors with a non-zero exit.
set -u
. "$(dirname "$0")/lib.sh"
FIX=tests/fixtures/weights
has() { grep -q -- "$2" "$1"; }   # basic regular expressions in this file

"$G" info --help >"$T/out" 2>&1; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "--base" && has "$T/out" "--input-size"; then pass info_help; else fail info_help "rc=$rc"; fi

"$G" info "$FIX/tiny_k2.h5" >"$T/out" 2>&1; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "^format: Keras HDF5, Keras 2 nested layout" \
   && has "$T/out" "^  conv1  (112 params)" && has "$T/out" "^  pool1  (no weights)" \
   && grep -q "conv1/kernel:0 *F32 *\[3, 3, 3, 4\]" "$T/out" \
   && grep -q "bn1/moving_variance:0 *F32 *\[4\]" "$T/out" \
   && has "$T/out" "^layers: 6 (3 with weights)" && has "$T/out" "^total: 453 parameters in 8 tensors"; then
  pass info_keras_h5; else fail info_keras_h5 "rc=$rc $(cat "$T/out")"; fi

"$G" info "$FIX/tiny_torch.safetensors" >"$T/out" 2>&1; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "torchvision names" && has "$T/out" "^metadata: format = pt" \
   && grep -q "features.0.weight *F32 *\[4, 3, 3, 3\]  -> HWIO \[3, 3, 3, 4\]" "$T/out" \
   && grep -q "classifier.0.weight *F32 *\[5, 64\]  -> \[in, out\] \[64, 5\]" "$T/out" \
   && has "$T/out" "^total: 453 parameters in 8 tensors"; then
  pass info_torch_safetensors; else fail info_torch_safetensors "rc=$rc $(cat "$T/out")"; fi

# Keras' own summary: VGG16 notop 14,714,688 params; with the top 138,357,544
"$G" info --base vgg16 >"$T/out" 2>&1; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "^Total params: 14714688" && has "$T/out" "block5_pool" \
   && has "$T/out" "(None, 7, 7, 512)"; then pass info_base_vgg16; else fail info_base_vgg16 "rc=$rc $(cat "$T/out")"; fi
"$G" info --base vgg16 --include-top >"$T/out" 2>&1; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "^Total params: 138357544" && has "$T/out" "predictions"; then
  pass info_base_vgg16_top; else fail info_base_vgg16_top "rc=$rc"; fi
"$G" info --base vgg16 --input-size 32x32 >"$T/out" 2>&1; rc=$?
if [ $rc -eq 0 ] && has "$T/out" "(None, 1, 1, 512)"; then pass info_base_input_size; else fail info_base_input_size "rc=$rc"; fi

# --weights: tiny weights do not fit VGG16: a clean error naming the file
"$G" info --base vgg16 --input-size 32x32 --weights "$FIX/tiny_k2.h5" >"$T/out" 2>&1; rc=$?
if [ $rc -ne 0 ] && has "$T/out" "^graft: error: $FIX/tiny_k2.h5: " && ! has "$T/out" "Total params"; then
  pass info_weights_mismatch; else fail info_weights_mismatch "rc=$rc $(cat "$T/out")"; fi

# errors: missing file, broken safetensors, not a weights file, bad options
"$G" info "$T/nope.h5" >"$T/out" 2>&1; rc=$?
if [ $rc -ne 0 ] && has "$T/out" "^graft: error: $T/nope.h5: cannot open"; then pass info_missing_file; else fail info_missing_file "rc=$rc $(cat "$T/out")"; fi
printf '\x40\x00\x00\x00\x00\x00\x00\x00{"a/kernel":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}}    ' >"$T/bad.safetensors"
"$G" info "$T/bad.safetensors" >"$T/out" 2>&1; rc=$?
if [ $rc -ne 0 ] && has "$T/out" "^graft: error: $T/bad.safetensors: .*a/kernel"; then
  pass info_bad_safetensors; else fail info_bad_safetensors "rc=$rc $(cat "$T/out")"; fi
echo "hello" >"$T/notes.txt"
"$G" info "$T/notes.txt" >"$T/out" 2>&1; rc=$?
if [ $rc -ne 0 ] && has "$T/out" "^graft: error: $T/notes.txt: not a weights file"; then
  pass info_not_weights; else fail info_not_weights "rc=$rc $(cat "$T/out")"; fi
"$G" info --bogus >"$T/out" 2>&1; rc1=$?
"$G" info >"$T/out2" 2>&1; rc2=$?
"$G" info --base vgg16 --input-size 3y >"$T/out3" 2>&1; rc3=$?
if [ $rc1 -ne 0 ] && has "$T/out" "graft: error: .*--bogus" && [ $rc2 -ne 0 ] && has "$T/out2" "graft: error" \
   && [ $rc3 -ne 0 ] && has "$T/out3" "graft: error: .*3y"; then
  pass info_bad_options; else fail info_bad_options "rc=$rc1/$rc2/$rc3"; fi
