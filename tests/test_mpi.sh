#!/usr/bin/env bash
# test_mpi.sh — data parallelism over MPI (issue 16), on this machine:
# `mpirun --allow-run-as-root --oversubscribe -np 2` over loopback with the
# MPI build (make MPI=1; `make test` builds it as $(B)-mpi and passes it in
# GRAFT_MPI_BIN).  Oracles: the 1-process run of the same command (same
# global batch and seed), compared tensor by tensor in numpy
# (fixtures/cmp_models.py: relative difference <= 1e-5), byte for byte
# (extract's .npy), and by the predictions of the two models on a test set.
#   train equivalence (uneven split of the global batch: 35 = 18 + 17,
#   dropout, a validation split; and with augmentation, no cache), rank 0 alone prints and writes, one thread
#   per rank by default, --batch below the rank count refused, resume from a
#   2-rank checkpoint on 1 rank and from a 1-rank one on 2 ranks, sharded
#   extract, sharded eval and probe, SIGTERM (one checkpoint, one message), and faults: a missing data file on rank 1 and a rank killed
#   (kill -9) mid-run each end the job with a message naming the rank.
set -u
. "$(dirname "$0")/lib.sh"
M=${GRAFT_MPI_BIN:-build-mpi/graft}

# the MPI tests run once, with the release build (not again under the sanitizers)
sb=${SB:-build-san}
if [ -d "$sb" ] && [ "$(cd "$(dirname "$G")" && pwd)" = "$(cd "$sb" && pwd)" ]; then
  echo "SKIP mpi: run with the release build only ($M)"; exit 0
fi
if ! command -v mpirun >/dev/null; then echo "SKIP mpi: no mpirun (apt-get install openmpi-bin libopenmpi-dev)"; exit 0; fi
if ! [ -x "$M" ]; then echo "SKIP mpi: no MPI build at $M (make MPI=1)"; exit 0; fi
need_numpy_pil mpi
cd "$T" || exit 1
export GRAFT_HOME=${GRAFT_HOME:-$T/home} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
G=$(cd "$OLDPWD" && realpath "$G"); M=$(cd "$OLDPWD" && realpath "$M")
R=$(cd "$OLDPWD" && pwd)
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca btl self,vader,tcp
        --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo)
run2() { timeout 120 "${MPIRUN[@]}" -np 2 "$@"; }

"$PY" "$R/tests/fixtures/gen_cli.py" cifar train.bin 300 1 && "$PY" "$R/tests/fixtures/gen_cli.py" cifar test.bin 100 2 \
  && "$PY" "$R/tests/fixtures/gen_cli.py" folder fold 4 3 || { echo "FAIL mpi_setup: gen_cli.py"; exit 1; }
cp "$R/tests/fixtures/cli/tiny.cfg" tiny.cfg
BASE=(--base darknet:tiny.cfg --weights none)
HEAD=(--head flatten,dense:48:relu,dropout:0.25,dense:10:softmax)
RUN=(--data train.bin --val-split 0.2 --epochs 2 --batch 35 --seed 3)

# ---- training: 2 ranks = 1 process with the same global batch and seed
"$G" train "${BASE[@]}" "${HEAD[@]}" "${RUN[@]}" --out one.gft --log one.csv >one.out 2>one.err; rc1=$?
run2 "$M" train "${BASE[@]}" "${HEAD[@]}" "${RUN[@]}" --out two.gft --log two.csv >two.out 2>two.err; rc2=$?
if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && "$PY" "$R/tests/fixtures/cmp_models.py" one.gft two.gft 1e-5 >cmp.out; then
  pass mpi_train_weights_equal_1_rank
else fail mpi_train_weights_equal_1_rank "rc=$rc1/$rc2 $(cat cmp.out two.err | tail -20)"; fi
# the log's losses and accuracies (rank 0's CSV) agree: the same epochs, the
# accuracies exactly, the losses within 2e-5 (the weights agree within 1e-5
# above: the two ranks' sums are added in another order, which moves the
# sixth printed digit of a loss on some CPUs)
if [ -s two.csv ] && "$PY" - one.csv two.csv <<'PYEOF'; then pass mpi_train_log_equal
import csv, sys
a, b = (list(csv.reader(open(f))) for f in sys.argv[1:3])
assert a[0] == b[0] and len(a) == len(b) == 3, (a, b)
for ra, rb in zip(a[1:], b[1:]):
    assert ra[0] == rb[0], (ra, rb)
    for k in (1, 3):   # loss, val_loss
        assert abs(float(ra[k]) - float(rb[k])) <= 2e-5, (k, ra, rb)
    for k in (2, 4):   # accuracy, val_accuracy
        assert ra[k] == rb[k], (k, ra, rb)
PYEOF
else fail mpi_train_log_equal "$(diff one.csv two.csv)"; fi
# identical predictions: eval's confusion matrix on the test set, predict's top class on images
"$G" eval --model one.gft --data test.bin --json >e1.json 2>&1 && "$G" eval --model two.gft --data test.bin --json >e2.json 2>&1
ok_eval=$?
"$G" predict --model one.gft --top 1 fold/*/*.png >p1.txt 2>&1 && "$G" predict --model two.gft --top 1 fold/*/*.png >p2.txt 2>&1
if [ $ok_eval -eq 0 ] && [ $? -eq 0 ] && "$PY" - e1.json e2.json <<'PYEOF' && [ -s p1.txt ] && cmp -s p1.txt p2.txt; then
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert a["n"] == b["n"] == 100, (a["n"], b["n"])
assert a["confusion"] == b["confusion"], "confusion matrices differ"
assert abs(a["loss"] - b["loss"]) <= 1e-5 * max(1, a["loss"]), (a["loss"], b["loss"])
PYEOF
  pass mpi_train_same_predictions
else fail mpi_train_same_predictions "$(cat e1.json e2.json; diff p1.txt p2.txt)"; fi
# without the features cache (augmentation: each rank runs its rows of every batch through the base)
A=(--data train.bin --augment --epochs 2 --batch 35 --seed 4 -q)
"$G" train "${BASE[@]}" "${HEAD[@]}" "${A[@]}" --out aug1.gft 2>aug.err && run2 "$M" train "${BASE[@]}" "${HEAD[@]}" "${A[@]}" --out aug2.gft 2>>aug.err; rc=$?
if [ $rc -eq 0 ] && "$PY" "$R/tests/fixtures/cmp_models.py" aug1.gft aug2.gft 1e-5 >cmp.out; then pass mpi_train_augment_weights_equal
else fail mpi_train_augment_weights_equal "rc=$rc $(cat cmp.out aug.err | tail)"; fi
# rank 0 alone reports (one epoch line each, one "saved"), one thread per rank on 2 cores by default
if [ "$(grep -c '^Epoch 1/2 - ' two.out)" -eq 1 ] && [ "$(grep -c '^saved two.gft' two.out)" -eq 1 ] \
   && has two.out '^data parallel: 2 ranks \(MPI\), global batch 35 = 18 or one less per rank' \
   && { [ "$(nproc)" -ne 2 ] || has two.out ', 1 threads on rank 0$'; } && [ -z "$(ls | grep -E 'tmp|ckpt')" ]; then
  pass mpi_rank0_reports_threads_split
else fail mpi_rank0_reports_threads_split "$(cat two.out two.err | tail -20)"; fi
run2 "$M" train "${BASE[@]}" "${HEAD[@]}" --data train.bin --batch 1 --epochs 1 --out b1.gft >b1.out 2>b1.err; rc=$?
if [ $rc -ne 0 ] && has b1.err 'graft: error: rank [01] of 2: --batch 1 is the global batch: it must be at least the number of ranks \(2\)' \
   && ! [ -e b1.gft ]; then pass mpi_batch_below_ranks_refused
else fail mpi_batch_below_ranks_refused "rc=$rc $(cat b1.err)"; fi

# ---- resume: a 2-rank checkpoint continued on 1 rank, a 1-rank one on 2 ranks (constant rate:
# a 1-epoch checkpoint resumed for 2 epochs is the 2-epoch run)
C=(--data train.bin --batch 35 --seed 5 --lr-schedule constant)
"$G" train "${BASE[@]}" "${HEAD[@]}" "${C[@]}" --epochs 2 -q --out full.gft 2>r.err \
  && run2 "$M" train "${BASE[@]}" "${HEAD[@]}" "${C[@]}" --epochs 1 -q --checkpoint c2.ckpt --out h2.gft 2>>r.err \
  && "$G" train --resume c2.ckpt "${C[@]}" --epochs 2 -q --out r21.gft 2>>r.err \
  && "$G" train "${BASE[@]}" "${HEAD[@]}" "${C[@]}" --epochs 1 -q --checkpoint c1.ckpt --out h1.gft 2>>r.err \
  && run2 "$M" train --resume c1.ckpt "${C[@]}" --epochs 2 -q --out r12.gft 2>>r.err; rc=$?
if [ $rc -eq 0 ] && "$PY" "$R/tests/fixtures/cmp_models.py" full.gft r21.gft 1e-5 >cmp.out \
   && "$PY" "$R/tests/fixtures/cmp_models.py" full.gft r12.gft 1e-5 >>cmp.out && ! cmp -s h2.gft r21.gft; then
  pass mpi_resume_2_to_1_and_1_to_2
else fail mpi_resume_2_to_1_and_1_to_2 "rc=$rc $(cat cmp.out r.err | tail -20)"; fi

# ---- extract: the .npy of 2 ranks is byte-identical to 1 process (100 images, chunks of 2 x 16)
"$G" extract "${BASE[@]}" --data test.bin --layer 3 --batch 16 --out x1.npy >/dev/null 2>x.err \
  && run2 "$M" extract "${BASE[@]}" --data test.bin --layer 3 --batch 16 --out x2.npy >x2.out 2>>x.err; rc=$?
if [ $rc -eq 0 ] && [ -s x1.npy ] && cmp -s x1.npy x2.npy && [ "$(grep -c '^x2.npy: 100 x 8 x 8 x 16' x2.out)" -eq 1 ]; then
  pass mpi_extract_byte_identical
else fail mpi_extract_byte_identical "rc=$rc $(cmp x1.npy x2.npy 2>&1) $(cat x.err)"; fi

# ---- eval: the ranks share the test set; the sums are those of 1 process
"$G" eval --model one.gft --data test.bin --json >ev1.json 2>ev.err && run2 "$M" eval --model one.gft --data test.bin --json >ev2.json 2>>ev.err; rc=$?
if [ $rc -eq 0 ] && "$PY" - ev1.json ev2.json <<'PYEOF'; then
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert a["n"] == b["n"] == 100 and a["confusion"] == b["confusion"], (a["n"], b["n"])
assert a["accuracy"] == b["accuracy"] and a["top5"] == b["top5"]
assert abs(a["loss"] - b["loss"]) <= 2e-6, (a["loss"], b["loss"])
PYEOF
  pass mpi_eval_sharded_equal
else fail mpi_eval_sharded_equal "rc=$rc $(cat ev1.json ev2.json ev.err)"; fi

# ---- probe: features sharded and gathered; the scores are those of 1 process
P=(probe "${BASE[@]}" --data train.bin --cuts all-pools --folds 3 --samples 200 --json --quiet)
"$G" "${P[@]}" >pr1.json 2>pr.err && run2 "$M" "${P[@]}" >pr2.json 2>>pr.err; rc=$?
if [ $rc -eq 0 ] && "$PY" - pr1.json pr2.json <<'PYEOF'; then
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert a["samples"] == b["samples"] == 200 and len(a["rows"]) == len(b["rows"]) == 2
for ra, rb in zip(a["rows"], b["rows"]):
    assert ra["cut"] == rb["cut"] and ra["form"] == rb["form"]
    for f in ("pooled", "flat"):
        for k in ("features", "ridge_acc", "ridge_lambda"):
            assert ra[f][k] == rb[f][k], (ra["cut"], f, k, ra[f][k], rb[f][k])
        assert abs(ra[f]["logme"] - rb[f]["logme"]) <= 1e-5, (ra["cut"], f, ra[f]["logme"], rb[f]["logme"])
assert a["best"] == b["best"]
PYEOF
  pass mpi_probe_sharded_equal
else fail mpi_probe_sharded_equal "rc=$rc $(cat pr1.json pr2.json pr.err | tail)"; fi

# ---- SIGTERM to mpirun (a batch scheduler's stop; ^C likewise): every rank stops after the same
# batch, rank 0 writes the checkpoint, one message, no MPI_Abort
"${MPIRUN[@]}" -np 2 "$M" train "${BASE[@]}" --head flatten,dense:10:softmax --data train.bin --no-cache --batch 8 --epochs 5000 \
  --checkpoint int.ckpt --out int.gft >i.out 2>i.err &
job=$!
for _ in $(seq 600); do has i.out '^Epoch 1/5000 ' 2>/dev/null && break; sleep 0.1; done
kill -TERM "$job"
( sleep 120; kill -9 "$job" 2>/dev/null ) & dog=$!   # a hang fails the test instead of CI
wait "$job"; rc=$?; kill "$dog" 2>/dev/null; wait "$dog" 2>/dev/null
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$(grep -c '^graft: interrupted in epoch [0-9]* after batch [0-9]*/38; checkpoint written to int.ckpt' i.err)" -eq 1 ] \
   && [ "$(grep -c 'interrupted' i.err)" -eq 1 ] && ! has i.err 'MPI_ABORT' && [ -s int.ckpt ] && ! [ -e int.gft ]; then
  pass mpi_interrupt_checkpoints_once
else fail mpi_interrupt_checkpoints_once "rc=$rc $(cat i.err)"; fi

# ---- faults: rank 1 cannot read its data file -> the job ends, naming rank 1 and the file
mkdir -p r0 r1 && cp train.bin r0/
run2 sh -c "exec '$M' train ${BASE[*]} --head flatten,dense:10:softmax --data r\$OMPI_COMM_WORLD_RANK/train.bin --epochs 50 --out f.gft" \
  >f.out 2>f.err; rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && has f.err '^graft: error: rank 1 of 2: r1/train.bin: ' && ! [ -e f.gft ]; then
  pass mpi_missing_data_on_one_rank_ends_job
else fail mpi_missing_data_on_one_rank_ends_job "rc=$rc $(cat f.err)"; fi
# a rank killed mid-run (kill -9): the whole job ends (no hang), mpirun names the rank and the signal
rm -f pid.*
run2 sh -c "echo \$\$ > pid.\$OMPI_COMM_WORLD_RANK; exec '$M' train ${BASE[*]} --head flatten,dense:10:softmax --data train.bin --no-cache --batch 8 --epochs 500 --out k.gft" \
  >k.out 2>k.err &
job=$!
for _ in $(seq 600); do has k.out '^Epoch 1/500 ' 2>/dev/null && break; sleep 0.1; done
if [ -s pid.1 ] && has k.out '^Epoch 1/500 '; then
  kill -9 "$(cat pid.1)"
  wait $job; rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && has k.err 'rank 1 .*(signal 9|Killed)' && ! [ -e k.gft ]; then pass mpi_killed_rank_ends_job
  else fail mpi_killed_rank_ends_job "rc=$rc $(cat k.err)"; fi
else
  kill "$job" 2>/dev/null; wait $job
  fail mpi_killed_rank_ends_job "the run did not start: $(cat k.out k.err | tail)"
fi
