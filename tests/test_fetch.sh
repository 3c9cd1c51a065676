#!/usr/bin/env bash
# test_fetch.sh — `graft fetch` from the command line: --help, --list, bad
# arguments, known names from a local HTTP server (GRAFT_FETCH_BASE_URL),
# "up to date" without a second download, a publisher-digest mismatch, the
# offline message, and ../shared/data as a mirror (skipped when absent).
set -u
. "$(dirname "$0")/lib.sh"
unset GRAFT_MIRROR GRAFT_FETCH_BASE_URL GRAFT_OFFLINE
export GRAFT_FETCH_TIMEOUT=5

has() { grep -q -- "$2" "$1"; }   # basic regular expressions in this file

# --help, --list, bad arguments
if "$G" fetch --help >"$T/out" 2>&1 && has "$T/out" "--mirror" && has "$T/out" "GRAFT_HOME"; then
  pass fetch_help; else fail fetch_help "$(cat "$T/out")"; fi
GRAFT_HOME="$T/h0" "$G" fetch --list >"$T/out" 2>&1; rc=$?
ok=1; for n in vgg16 vgg16-top resnet50 tiny-darknet cifar10 cifar100; do has "$T/out" "^$n " || ok=0; done
if [ $rc -eq 0 ] && [ $ok -eq 1 ] && has "$T/out" "missing" && has "$T/out" "c32a1d4ab5d03f1284b67883e8d87530" \
   && has "$T/out" "none published"; then pass fetch_list; else fail fetch_list "rc=$rc $(cat "$T/out")"; fi
GRAFT_HOME="$T/h0" "$G" fetch --bogus vgg16 >"$T/out" 2>&1; rc=$?
if [ $rc -ne 0 ] && has "$T/out" "graft: error: .*--bogus"; then pass fetch_bad_option; else fail fetch_bad_option "rc=$rc"; fi
GRAFT_HOME="$T/h0" "$G" fetch vgg17 >"$T/out" 2>&1; rc=$?
if [ $rc -ne 0 ] && has "$T/out" "unknown name 'vgg17'" && has "$T/out" "tiny-darknet"; then
  pass fetch_unknown_name; else fail fetch_unknown_name "rc=$rc $(cat "$T/out")"; fi
GRAFT_HOME="$T/h0" "$G" fetch >"$T/out" 2>&1; rc=$?
if [ $rc -ne 0 ] && has "$T/out" "graft: error"; then pass fetch_no_name; else fail fetch_no_name "rc=$rc"; fi

# offline, no mirror: says what to download from where and where to put it
GRAFT_HOME="$T/h1" GRAFT_OFFLINE=1 "$G" fetch vgg16 >"$T/out" 2>&1; rc=$?
if [ $rc -ne 0 ] && has "$T/out" "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" \
   && has "$T/out" "$T/h1/weights/vgg16" && has "$T/out" "--mirror"; then
  pass fetch_offline_message; else fail fetch_offline_message "rc=$rc $(cat "$T/out")"; fi

# a local server
mkdir -p "$T/www"
printf 'weights' >"$T/www/tiny.weights"; printf '[net]\n' >"$T/www/tiny.cfg"; printf 'tench\n' >"$T/www/imagenet.shortnames.list"
printf 'fake' >"$T/www/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
/usr/bin/python3 tests/fixtures/http_server.py "$T/www" "$T/log" 40 >"$T/port" &
srv=$!; PIDS+=("$srv")
for _ in $(seq 100); do grep -q PORT "$T/port" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^PORT //p' "$T/port")
if [ -z "$port" ]; then
  fail fetch_server "tests/fixtures/http_server.py did not start"
else
  export GRAFT_FETCH_BASE_URL="http://127.0.0.1:$port/ok"
  GRAFT_HOME="$T/h2" "$G" fetch tiny-darknet >"$T/out" 2>&1; rc=$?
  if [ $rc -eq 0 ] && cmp -s "$T/www/tiny.cfg" "$T/h2/weights/darknet-tiny/tiny.cfg" \
     && cmp -s "$T/www/tiny.weights" "$T/h2/weights/darknet-tiny/tiny.weights" && has "$T/out" "not verified"; then
    pass fetch_from_server; else fail fetch_from_server "rc=$rc $(cat "$T/out")"; fi
  n1=$(wc -l <"$T/log")
  GRAFT_HOME="$T/h2" "$G" fetch tiny-darknet >"$T/out" 2>&1; rc=$?
  n2=$(wc -l <"$T/log")
  if [ $rc -eq 0 ] && has "$T/out" "up to date" && [ "$n1" = "$n2" ]; then
    pass fetch_up_to_date; else fail fetch_up_to_date "rc=$rc requests $n1 -> $n2 $(cat "$T/out")"; fi
  GRAFT_HOME="$T/h2" "$G" fetch vgg16 >"$T/out" 2>&1; rc=$?
  if [ $rc -ne 0 ] && has "$T/out" "md5 mismatch" && has "$T/out" "6d6bbae143d832006294945121d1f1fc" \
     && has "$T/out" "$GRAFT_FETCH_BASE_URL/vgg16_weights" && [ -z "$(ls -A "$T/h2/weights/vgg16")" ]; then
    pass fetch_digest_mismatch; else fail fetch_digest_mismatch "rc=$rc $(cat "$T/out"; ls "$T/h2/weights/vgg16")"; fi
  GRAFT_HOME="$T/h2" "$G" fetch resnet50 >"$T/out" 2>&1; rc=$?
  if [ $rc -ne 0 ] && has "$T/out" "HTTP status 404" && has "$T/out" "resnet50_weights"; then
    pass fetch_404; else fail fetch_404 "rc=$rc $(cat "$T/out")"; fi
  unset GRAFT_FETCH_BASE_URL
fi

# the shared data as a mirror (files checked against its SHA256SUMS; cifar10 linked)
if [ ! -f "$DATA/SHA256SUMS" ]; then
  echo "SKIP fetch_mirror_shared_data: no shared data at $DATA"
else
  GRAFT_HOME="$T/h3" GRAFT_OFFLINE=1 "$G" fetch --mirror "$DATA" tiny-darknet cifar10 >"$T/out" 2>&1; rc=$?
  if [ $rc -eq 0 ] && has "$T/out" "mirror" && cmp -s "$DATA/weights/darknet-tiny/tiny.weights" "$T/h3/weights/darknet-tiny/tiny.weights" \
     && [ -f "$T/h3/datasets/cifar10/cifar-10-batches-bin/test_batch.bin" ]; then
    pass fetch_mirror_shared_data; else fail fetch_mirror_shared_data "rc=$rc $(cat "$T/out")"; fi
  GRAFT_HOME="$T/h3" GRAFT_MIRROR="$DATA" GRAFT_OFFLINE=1 "$G" fetch cifar10 >"$T/out" 2>&1; rc=$?
  if [ $rc -eq 0 ] && has "$T/out" "up to date"; then pass fetch_mirror_up_to_date; else fail fetch_mirror_up_to_date "rc=$rc $(cat "$T/out")"; fi
fi
