#!/usr/bin/env bash
# peers.sh — `make bench-peers` (issue 18): graft against the peers a user
# would run today, installed from the Python package index into
# $B/peers-venv: current PyTorch (eager NCHW / channels_last, fp32 / bf16
# autocast, torch.compile inductor), ONNX Runtime and OpenVINO on an ONNX
# export of the same VGG16, and Keras 3 (TensorFlow backend) running the seed
# program.  Every part runs graft and its peers taking turns (two FIFOs, as
# bench/forward.sh), 2 threads each, and prints the versions it compared with,
# the load average and graft / best peer.
#
# Usage: bench/peers.sh [setup|forward|finetune|recipe|all]      (default all)
#   setup     create $B/peers-venv (python3 -m venv from Debian's python3) and
#             pip-install torch torchvision onnx onnxscript (torch.onnx's
#             default dynamo exporter needs it) onnxruntime openvino
#             tensorflow-cpu; versions -> $B/peers-venv/versions.txt.  Skipped
#             with a message (exit 0) where the index is unreachable.
#   forward   VGG16 base forward, 32x32 b64 and 224x224 b8, fp32 and bf16
#   finetune  one training step, VGG16 block5 unfrozen and fully unfrozen, 32x32 b64
#   recipe    the seed recipe end to end (real CIFAR-10, frozen base, 20 epochs),
#             graft vs Keras 3 running the seed program and PyTorch's usual loop;
#             peak RSS at 64x64
# Environment: B [build]  PEERS_CONFIGS [32x64 224x8] (HxB)  PEERS_PRECS [fp32 bf16]
#   PEERS_FP32 / PEERS_BF16 / PEERS_FT: the peer variants (see peers_forward.py, peers_finetune.py)
#   PEERS_MODES [block5 full]  PEERS_KEEP=1: append to the forward/finetune results (re-running some rows)  PEERS_THREADS [2]  PEERS_SECONDS [6] per measured config
#   PEERS_VENV [$B/peers-venv]  GRAFT_DATA [../shared/data]
#   PEERS_RECIPE_TRAIN [50000] training images for the recipe (0 < n <= 10000:
#   the first n of data_batch_1)  PEERS_RECIPE_EPOCHS [20]
#   PEERS_PEER_EPOCHS [1] epochs the peers run; their wall is extrapolated to
#   PEERS_RECIPE_EPOCHS (the way bench_recipe.sh does: wall - epochs run + asked x mean epoch)
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}
VENV=${PEERS_VENV:-$B/peers-venv}
TH=${PEERS_THREADS:-2}
SECS=${PEERS_SECONDS:-6}
DATA=${GRAFT_DATA:-$(cd .. && pwd)/shared/data}
PARTS=${1:-all}
[ "$PARTS" = all ] && PARTS="setup forward finetune recipe"
PKGS="torch torchvision onnx onnxscript onnxruntime openvino tensorflow-cpu"
LIBS="$(pkg-config --libs hdf5 libpng libjpeg libcurl json-c libarchive zlib 2>/dev/null) -ldnnl -lcrypto -lm -lpthread -fopenmp"
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -march=x86-64-v2 -fopenmp -Iinclude -Isrc"
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# ---- the peers' virtual environment ------------------------------------------------------
setup() {
  local py=$VENV/bin/python
  if [ -x "$py" ] && [ -f "$VENV/versions.txt" ] && "$py" -c "import torch, torchvision, onnx, onnxscript, onnxruntime, openvino, tensorflow, keras" 2>/dev/null; then
    echo "peers: $VENV ready ($(tr '\n' ' ' <"$VENV/versions.txt"))"
    return 0
  fi
  /usr/bin/python3 -c "import venv, ensurepip" 2>/dev/null || {
    echo "peers: Debian's python3 has no venv/ensurepip: scripts/deps.sh test installs python3-venv" >&2; return 1; }
  # is the index served here?  (pip's own configuration: index, certificates, proxy)
  if ! timeout 120 /usr/bin/python3 -m pip download --no-deps --only-binary :all: -d "$(mktemp -d)" \
        -q six >/dev/null 2>&1; then
    echo "peers: SKIPPED — the Python package index is not reachable from this machine" \
         "(pip download failed); the peer benchmarks need torch, onnxruntime, openvino, tensorflow-cpu"
    return 2
  fi
  [ -x "$py" ] || /usr/bin/python3 -m venv "$VENV"
  echo "peers: installing $PKGS into $VENV (several GB: torch's default wheel brings CUDA libraries)"
  "$py" -m pip install -q --upgrade pip >/dev/null
  "$py" -m pip install -q $PKGS
  "$py" - >"$VENV/versions.txt" <<'PY'
import importlib.metadata as md, platform
print("python", platform.python_version())
for p in ("torch", "torchvision", "onnx", "onnxruntime", "openvino", "tensorflow-cpu", "keras", "numpy"):
    try:
        print(p, md.version(p))
    except md.PackageNotFoundError:
        print(p, "absent")
PY
  echo "peers: $VENV ready ($(tr '\n' ' ' <"$VENV/versions.txt"))"
}

if has setup; then
  rc=0; setup || rc=$?
  [ $rc -eq 2 ] && exit 0       # index unreachable: skipped, said so
  [ $rc -ne 0 ] && exit $rc
fi
PY=$VENV/bin/python
[ -x "$PY" ] || { echo "peers: no $VENV (run bench/peers.sh setup)"; exit 1; }
SUM=/usr/bin/python3
mkdir -p "$B/bench/peers"
OUT=$B/bench/peers
VERS=$(tr '\n' ' ' <"$VENV/versions.txt")
echo "== peers: $VERS"
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores;" \
     "bf16 native: $(grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo && echo yes || echo no)" \
     "(avx512f: $(grep -qw avx512f /proc/cpuinfo && echo yes || echo no)); $TH threads per side"
# graft (its CLI's policy) and the peers wait passively between rounds: a
# spinning pool would steal the cores of whoever has the turn
export OMP_WAIT_POLICY=PASSIVE

# ring OUT_FILE "GRAFT COMMAND" "PEER COMMAND"... : graft and its peers take turns.
# Every command has @IN@ and @OUT@ (its turn FIFO in, the shared 'done' FIFO out);
# peers also @READY@ (created after their warm-up).  The peers start first and
# warm up together; graft starts when all are ready (or gone); then this shell
# hands the token to each live participant in turn, TURN_ROUNDS (6) times,
# so every side's rounds are spread over the same minutes.  Each process
# prints one key=value line, appended to OUT_FILE.
ring() {
  local res=$1; shift
  local cmds=("$@") n=$# dir i r fd tok
  dir=$(mktemp -d)
  mkfifo "$dir/done"
  exec {done_fd}<>"$dir/done"
  local fds=() pids=() live=()
  for ((i = 0; i < n; i++)); do
    mkfifo "$dir/in$i"
    exec {fd}<>"$dir/in$i"
    fds[i]=$fd
  done
  start() {
    local c=${cmds[$1]}
    c=${c//@IN@/$dir/in$1}; c=${c//@OUT@/$dir/done}; c=${c//@READY@/$dir/ready$1}
    timeout 2400 $c >"$dir/o$1" 2>"$dir/e$1" &
    pids[$1]=$!
  }
  for ((i = 1; i < n; i++)); do start $i; done
  local t0=$SECONDS waiting=1
  while [ $waiting = 1 ] && [ $((SECONDS - t0)) -lt 2400 ]; do
    waiting=0
    for ((i = 1; i < n; i++)); do
      [ -e "$dir/ready$i" ] || ! kill -0 "${pids[i]}" 2>/dev/null || waiting=1
    done
    sleep 1
  done
  start 0
  for ((i = 0; i < n; i++)); do [ $i = 0 ] || [ -e "$dir/ready$i" ] && live+=($i); done
  for ((r = 0; r < 6; r++)); do
    for i in "${live[@]}"; do
      kill -0 "${pids[i]}" 2>/dev/null || continue
      printf t >&"${fds[i]}"
      until read -r -t 5 -n 1 -u "$done_fd" tok; do
        kill -0 "${pids[i]}" 2>/dev/null || break
      done
    done
  done
  for ((i = 0; i < n; i++)); do
    wait "${pids[i]}" || { echo "peers: failed ($(tail -2 "$dir/e$i" | tr '\n' ' ')): ${cmds[i]}" >&2; }
    cat "$dir/o$i" >>"$res"
  done
  for fd in "${fds[@]}"; do exec {fd}>&-; done
  exec {done_fd}>&-
  rm -rf "$dir"
}

if has forward; then
  cc $CFLAGS -o "$B/bench/bench_forward" bench/bench_forward.c "$B/libgraft.a" $LIBS
  res=$OUT/forward.txt; [ "${PEERS_KEEP:-0}" = 1 ] || : >"$res"
  echo "forward: load before $(load)"
  "$B/bench/bench_forward" fma 2 >>"$res"
  for cfg in ${PEERS_CONFIGS:-32x64 224x8}; do
    set -- ${cfg/x/ }
    $PY bench/peers_forward.py export "$1" "$2" 0 "$TH" "$OUT" >/dev/null || echo "peers: the ONNX export failed: ONNX Runtime and OpenVINO will fail" >&2
    for prec in ${PEERS_PRECS:-fp32 bf16}; do
      if [ $prec = fp32 ]; then
        peers=${PEERS_FP32:-torch_nchw torch_cl torch_mkldnn torch_compile_cl ort ov_latency ov_throughput}
      else
        peers=${PEERS_BF16:-torch_bf16_nchw torch_bf16_cl torch_compile_bf16_cl ov_bf16_latency ov_bf16_throughput}
      fi
      args=("$B/bench/bench_forward vgg $1 $2 $prec $SECS @IN@ @OUT@")
      for p in $peers; do
        args+=("$PY bench/peers_forward.py $p $1 $2 $SECS $TH $OUT @IN@ @OUT@ @READY@")
      done
      echo "forward ${1}x$1 b$2 $prec: graft + $peers (load $(load))"
      ring "$res" "${args[@]}"
    done
  done
  echo "load after: $(load)" >>"$res"
fi

if has finetune; then
  cc $CFLAGS -o "$B/bench/bench_finetune" bench/bench_finetune.c "$B/libgraft.a" $LIBS
  res=$OUT/finetune.txt; [ "${PEERS_KEEP:-0}" = 1 ] || : >"$res"
  echo "finetune: load before $(load)"
  for mode in ${PEERS_MODES:-block5 full}; do
    args=("$B/bench/bench_finetune $mode 32 64 $SECS @IN@ @OUT@ $TH")
    for p in ${PEERS_FT:-torch_nchw torch_cl torch_compile_cl}; do
      args+=("$PY bench/peers_finetune.py $p $mode 32 64 $SECS $TH @IN@ @OUT@ @READY@")
    done
    echo "finetune $mode 32x32 b64: graft + ${PEERS_FT:-torch_nchw torch_cl torch_compile_cl} (load $(load))"
    ring "$res" "${args[@]}"
  done
  echo "load after: $(load)" >>"$res"
fi

if has recipe; then
  CIFAR=$DATA/cifar-10-batches-bin; TEST=$CIFAR/test_batch.bin; D=$DATA/weights/darknet-tiny
  EPOCHS=${PEERS_RECIPE_EPOCHS:-20}; PEP=${PEERS_PEER_EPOCHS:-1}; NTRAIN=${PEERS_RECIPE_TRAIN:-50000}
  if [ ! -f "$TEST" ] || [ ! -f "$D/tiny.weights" ]; then
    echo "recipe: SKIPPED — real CIFAR-10 / Tiny Darknet absent under $DATA (set GRAFT_DATA)"
  else
    [ -x "$B/graft" ] || make -s B="$B" "$B/graft"
    TRAIN=$CIFAR
    if [ "$NTRAIN" -lt 50000 ]; then TRAIN=$OUT/train_first$NTRAIN.bin; head -c $((NTRAIN * 3073)) "$CIFAR/data_batch_1.bin" >"$TRAIN"; fi
    res=$OUT/recipe.txt; : >"$res"
    # timed NAME COMMAND...: one run under /usr/bin/time; its key value lines + wall, rss_mb,
    # and wall_extrapolated (to $EPOCHS epochs from its epoch_seconds lines) into $res as NAME.key value
    timed() {
      local name=$1 log=$OUT/recipe_$1.log; shift
      echo "recipe $name (load $(load)): $*"
      echo "$name.load_before $(load | tr ' ' ,)" >>"$res"
      if ! /usr/bin/time -f "wall %e\nrss_kb %M" -o "$log.time" "$@" >"$log" 2>&1; then
        echo "peers: $name FAILED (see $log): $(tail -3 "$log" | tr '\n' ' ')" >&2; return 0
      fi
      cat "$log.time" >>"$log"
      awk -v n="$name" -v want="$EPOCHS" '
        $1 == "wall" { w = $2 } $1 == "rss_kb" { r = $2 / 1024 }
        $1 == "epoch_seconds" { s += $2; k++ }
        /^Epoch [0-9]+\/[0-9]+ - / { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+s$/) { sub("s", "", $i); s += $i; k++; break } }
        $1 == "test_accuracy" { a = $2 } /^Test accuracy:/ { a = $3 }
        $1 == "versions" { v = $2 " " $3 }
        END { printf "%s.wall %.1f\n%s.rss_mb %.0f\n%s.epochs_run %d\n%s.wall_extrapolated %.1f\n%s.accuracy %s\n",
                     n, w, n, r, n, k, n, (k ? w - s + want * s / k : w), n, a
              if (v != "") printf "%s.versions %s\n", n, v }' "$log" >>"$res"
    }
    # 1. the seed program: VGG16 (random weights: no imagenet .h5 here), 32x32, frozen, 20 epochs
    GRAFT_FEATURES_CACHE=0 timed graft_vgg16 "$B/graft" train --base vgg16 --weights none --data "$TRAIN" \
      --test "$TEST" --epochs "$EPOCHS" --threads "$TH" --no-standardize --out "$OUT/vgg16.gft"
    timed keras_vgg16 "$PY" bench/peers_keras_recipe.py "$TRAIN" "$TEST" "$PEP" "$TH" none 32
    timed torch_vgg16 "$PY" bench/peer_recipe.py --base vgg16 --data "$TRAIN" --test "$TEST" \
      --epochs "$EPOCHS" --budget 1e-9 --threads "$TH" --mode usual
    # 2. peak RSS at 64x64: the recipe of bench_recipe.sh (real Tiny Darknet cut at layer 18)
    GRAFT_FEATURES_CACHE=0 timed graft_darknet64 "$B/graft" train --base "darknet:$D/tiny.cfg" \
      --weights "$D/tiny.weights" --data "$TRAIN" --test "$TEST" --input-size 64x64 --epochs "$EPOCHS" \
      --threads "$TH" --no-standardize --out "$OUT/darknet64.gft"
    timed torch_darknet64 "$PY" bench/peer_recipe.py --cfg "$D/tiny.cfg" --weights "$D/tiny.weights" \
      --data "$TRAIN" --test "$TEST" --size 64 --epochs "$EPOCHS" --budget 1e-9 --threads "$TH" --mode usual
    echo "recipe.load_after $(load | tr ' ' ,)" >>"$res"
  fi
fi

# ---- the table ---------------------------------------------------------------------------
$SUM bench/peers_table.py "$OUT" "$VENV/versions.txt" "$(load)"
