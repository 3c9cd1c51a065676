#!/usr/bin/env bash
# bench_mpi.sh — the overhead of data parallelism over MPI on one machine:
# the same work as 1 process x 2 threads and as `mpirun -np 2` x 1 thread
# (the MPI build, make MPI=1), on real CIFAR-10 with the real Tiny Darknet:
#   1. the frozen recipe at 64x64 (features computed once — sharded over the
#      ranks, then gathered — and a head trained on them for 2 epochs),
#   2. a fine-tuning epoch at 32x32 (the base trains from its layer 14 on;
#      every step runs the frozen part and backward through the unfrozen one),
# printing wall time, the features' images/s and the all-reduce's time per
# step (rank 0's, waiting for the other rank included).  Each run gets a
# fresh $GRAFT_HOME, so the features cache on disk never answers.
# Usage: bench/bench_mpi.sh [N images, default 2000]
#   B build dir [build] (the MPI build: $B-mpi, or MB)   GRAFT_DATA [../shared/data]
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}; MB=${MB:-$B-mpi}; N=${1:-2000}
DATA=${GRAFT_DATA:-$(cd .. && pwd)/shared/data}
D="$DATA/weights/darknet-tiny"; CIFAR="$DATA/cifar-10-batches-bin"
[ -f "$D/tiny.weights" ] && [ -f "$CIFAR/data_batch_1.bin" ] || { echo "bench_mpi: $DATA lacks Tiny Darknet or CIFAR-10 (set GRAFT_DATA)"; exit 1; }
command -v mpirun >/dev/null || { echo "bench_mpi: no mpirun (apt-get install openmpi-bin libopenmpi-dev)"; exit 1; }
[ -x "$MB/graft" ] || make --no-print-directory MPI=1 B="$MB" "$MB/graft" >/dev/null
G="$B/graft"; [ -x "$G" ] || make --no-print-directory B="$B" "$G" >/dev/null
T=$(mktemp -d /tmp/graft-bench-mpi-XXXXXX); trap 'rm -rf "$T"' EXIT
head -c $((N * 3073)) "$CIFAR/data_batch_1.bin" >"$T/train.bin"
export OMP_WAIT_POLICY=PASSIVE
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np 2)
BASE=(--base "darknet:$D/tiny.cfg" --weights "$D/tiny.weights")

run() {   # run LABEL LOG command... -> "LABEL wall features img/s all-reduce ms/step"
  local label=$1 log=$2; shift 2
  rm -rf "$T/home"
  local t0 t1
  t0=$(date +%s.%N)
  GRAFT_HOME="$T/home" "$@" >"$log" 2>&1 || { echo "$label: failed"; tail -5 "$log"; return 0; }
  t1=$(date +%s.%N)
  local feat red
  feat=$(sed -n 's/^features (train): .*(\([0-9]*\) img\/s)$/\1/p' "$log" | head -1)
  red=$(sed -n 's/^all-reduce: \([0-9.]*\) ms per step (\([0-9]*\) steps of \([0-9]*\) floats.*/\1 ms x \2 steps, \3 floats/p' "$log")
  printf '%-34s %7.1f s   features %6s img/s   all-reduce %s\n' "$label" "$(echo "$t1 - $t0" | bc)" "${feat:--}" "${red:--}"
}

echo "== frozen recipe: Tiny Darknet at 64x64, $N CIFAR-10 images, head trained 2 epochs (batch 32)"
R=(train "${BASE[@]}" --data "$T/train.bin" --input-size 64x64 --epochs 2 --batch 32 --out "$T/m.gft")
run "1 process x 2 threads" "$T/f1.log" "$G" "${R[@]}" --threads 2
run "2 ranks x 1 thread (mpirun)" "$T/f2.log" "${MPIRUN[@]}" "$MB/graft" "${R[@]}"
echo "== fine-tuning: Tiny Darknet at 32x32 from layer 14 on, 1 epoch of $N images (batch 32)"
R=(train "${BASE[@]}" --data "$T/train.bin" --unfreeze 14/conv --lr 0.001 --epochs 1 --batch 32 --out "$T/m.gft")
run "1 process x 2 threads" "$T/t1.log" "$G" "${R[@]}" --threads 2
run "2 ranks x 1 thread (mpirun)" "$T/t2.log" "${MPIRUN[@]}" "$MB/graft" "${R[@]}"
