#!/usr/bin/env bash
# ab.sh — graft against graft: two source trees (e.g. before and after a
# refactoring), each with its built $B/libgraft.a and graft, measured on the
# same work with their rounds taking turns (the token-passing of
# bench/forward.sh), so both see the same background load.  Prints each
# step's img/s (or seconds) for A and B and the ratio B/A.
#   Usage: bench/ab.sh TREE_A TREE_B [SECONDS]   (B=build dir name, default build)
#   Steps: VGG16 base forward (32x32 b64, 224x224 b8, fp32), a fine-tuning
#   step (block5 unfrozen, fully unfrozen; 32x32 b64), and the seed recipe
#   quick run (graft train, Tiny Darknet, 5000 real CIFAR-10 images, 2 epochs,
#   no features cache), timed 3 times each, alternating.
set -eu
A=$(realpath "$1"); Bt=$(realpath "$2"); secs=${3:-6}; bd=${B:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
LIBS="$(pkg-config --libs hdf5 libpng libjpeg libcurl json-c libarchive zlib libprotobuf-c cairo 2>/dev/null) -ldnnl -lopenblas -lcrypto -lm -lpthread -fopenmp"
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
for t in A B; do
  tree=$A; [ $t = B ] && tree=$Bt
  for b in forward finetune; do
    cc -std=c11 -D_GNU_SOURCE -O2 -fopenmp -I"$tree/include" -I"$tree/src" -o "$w/${b}_$t" \
       "$tree/bench/bench_$b.c" "$tree/$bd/libgraft.a" $LIBS
  done
done
mkfifo "$w/to_a" "$w/to_b"
export OMP_WAIT_POLICY=PASSIVE
pair() {   # pair NAME ARGS_BEFORE_FIFOS... -- ARGS_AFTER_FIFOS...: A and B taking turns
  local name=$1; shift
  local pre=() post=() seen=0
  for x in "$@"; do
    if [ "$x" = -- ]; then seen=1; continue; fi
    if [ $seen = 0 ]; then pre+=("$x"); else post+=("$x"); fi
  done
  exec 3<>"$w/to_a" 4<>"$w/to_b"
  printf t >&3
  "$w/${name}_A" "${pre[@]}" "$w/to_a" "$w/to_b" "${post[@]}" >"$w/a" &
  local pa=$!
  "$w/${name}_B" "${pre[@]}" "$w/to_b" "$w/to_a" "${post[@]}" >"$w/b" &
  local pb=$!
  wait $pa; wait $pb
  exec 3>&- 4>&-
  local ia ib
  ia=$(sed -n 's/.* img_s=\([0-9.]*\).*/\1/p' "$w/a" | head -1)
  ib=$(sed -n 's/.* img_s=\([0-9.]*\).*/\1/p' "$w/b" | head -1)
  printf '%-34s A %8s img/s   B %8s img/s   B/A %s\n' "$name ${pre[*]:0:4}" "$ia" "$ib" \
    "$(awk "BEGIN{printf \"%.3f\", $ib/$ia}")"
}
echo "A = $A ($(git -C "$A" rev-parse --short HEAD))  B = $Bt ($(git -C "$Bt" rev-parse --short HEAD)); load $(cut -d' ' -f1-3 /proc/loadavg)"
pair forward vgg 32 64 fp32 "$secs" --
pair forward vgg 224 8 fp32 "$secs" --
pair finetune block5 32 64 "$secs" -- "$(nproc)"
pair finetune full 32 64 "$secs" -- "$(nproc)"
# the seed recipe, quick: 5000 images, 2 epochs, cache off (the frozen base runs every time)
data=${GRAFT_DATA:-$here/../shared/data}/cifar-10-batches-bin/data_batch_1.bin
if [ -f "$data" ]; then
  head -c $((5000 * 3073)) "$data" >"$w/train.bin"
  ta=(); tb=()
  for r in 1 2 3; do
    for t in A B; do
      tree=$A; [ $t = B ] && tree=$Bt
      s=$(date +%s.%N)
      GRAFT_FEATURES_CACHE=0 "$tree/$bd/graft" train --base tiny-darknet --data "$w/train.bin" --epochs 2 \
        --input-size 64x64 --no-cache --quiet --out "$w/m_$t.gft" >/dev/null
      e=$(awk "BEGIN{print $(date +%s.%N) - $s}")
      if [ $t = A ]; then ta+=("$e"); else tb+=("$e"); fi
    done
  done
  ma=$(printf '%s\n' "${ta[@]}" | sort -g | sed -n 2p); mb=$(printf '%s\n' "${tb[@]}" | sort -g | sed -n 2p)
  printf '%-34s A %8.2f s       B %8.2f s       B/A %s (median of 3; runs A %s, B %s)\n' "recipe quick 64x64" \
    "$ma" "$mb" "$(awk "BEGIN{printf \"%.3f\", $mb/$ma}")" "${ta[*]}" "${tb[*]}"
  cmp -s "$w/m_A.gft" "$w/m_B.gft" && echo "recipe models: bit-identical" || echo "recipe models: DIFFER"
else
  echo "recipe: skipped ($data missing)"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
