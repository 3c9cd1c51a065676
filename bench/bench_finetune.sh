#!/usr/bin/env bash
# bench_finetune.sh — fine-tuning throughput (issue #5): one training step of
# VGG16 (random weights) + the seed head (dense 1024 relu, dense 10 softmax),
# SGD lr 0.01 momentum 0.9 Nesterov, 32x32 batch 64 by default, graft
# (bench/bench_finetune.c) vs PyTorch (bench/peer_finetune.py), same thread
# count, in two configurations:
#   block5: blocks 1-4 frozen (inference each step), block5 + head train;
#   full:   everything trains;
# plus graft's block5 step on cached block4_pool features (the trainer step
# only: what graft's features cache gives; PyTorch's loop has no such cache).
# Target: graft/PyTorch >= 1.15 on block5 and full (like for like).
#   Usage: bench/bench_finetune.sh [BENCH_BINARY] [SECONDS] [SIZE] [BATCH]
#   (no binary: builds it against ${B:-build}/libgraft.a into $B/bench/)
#   THREADS=n (default: all cores) for both sides.
#   TORCH_WAIT=PASSIVE (default) | default: PyTorch's OMP_WAIT_POLICY.  graft
#   runs PASSIVE as its CLI does; PyTorch gets the same by default (on a
#   shared box its default spinning policy measured 2.7x slower: 50 vs 135
#   img/s for block5 with one other job running), TORCH_WAIT=default unsets it.
set -eu
bin=${1:-}; secs=${2:-12}; size=${3:-32}; batch=${4:-64}
[ -n "$bin" ] && bin=$(realpath "$bin")
cd "$(dirname "$0")/.."
py=/usr/bin/python3
if [ -z "$bin" ]; then
  B=${B:-build}
  LIBS="$(pkg-config --libs hdf5 libpng libjpeg libcurl json-c libarchive zlib 2>/dev/null) -ldnnl -lcrypto -lm -lpthread -fopenmp"
  mkdir -p "$B/bench"
  bin=$B/bench/bench_finetune
  cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -march=x86-64-v3 -fopenmp -Iinclude -Isrc \
     -o "$bin" bench/bench_finetune.c "$B/libgraft.a" $LIBS
fi
threads=${THREADS:-$(nproc)}
out=$(mktemp); fifo=$(mktemp -d); trap 'rm -f "$out"; rm -rf "$fifo"' EXIT
mkfifo "$fifo/to_graft" "$fifo/to_torch"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# graft under OMP_WAIT_POLICY=PASSIVE, as the CLI runs itself
export OMP_WAIT_POLICY=PASSIVE
torch_wait=${TORCH_WAIT:-PASSIVE}
if [ "$torch_wait" = default ]; then torch_env="env -u OMP_WAIT_POLICY"; else torch_env="env OMP_WAIT_POLICY=$torch_wait"; fi
for mode in block5 full; do
  # graft and PyTorch side by side, their measured rounds taking turns (a
  # token through two FIFOs held open by this shell), so both see the same
  # background load; each config in its own pair of processes (peak RSS)
  exec 3<>"$fifo/to_graft" 4<>"$fifo/to_torch"
  printf t >&3   # graft takes the first round
  timeout 1200 "$bin" "$mode" "$size" "$batch" "$secs" "$fifo/to_graft" "$fifo/to_torch" "$threads" \
    >"$fifo/g" &
  gpid=$!
  $torch_env timeout 1200 "$py" bench/peer_finetune.py "$mode" "$size" "$batch" "$secs" \
    "$threads" "$fifo/to_torch" "$fifo/to_graft" >"$fifo/t" &
  tpid=$!
  wait "$gpid" || echo "graft bench failed ($mode)" >&2
  wait "$tpid" || echo "torch peer failed ($mode)" >&2
  exec 3>&- 4>&-
  cat "$fifo/g" "$fifo/t" >>"$out"
done
# graft alone: the block5 trainer step on cached features
"$bin" block5_cached "$size" "$batch" "$(awk "BEGIN{print $secs/2}")" "" "" "$threads" >>"$out" ||
  echo "graft bench failed (block5_cached)" >&2
load=$(cut -d' ' -f1-3 /proc/loadavg)
"$py" - "$out" "$load" "$torch_wait" <<'PY'
import sys
rows = [dict(kv.split("=", 1) for kv in l.split()) for l in open(sys.argv[1]) if l.startswith("who=")]
g0 = next(r for r in rows if r["who"] == "graft")
print("Fine-tuning step, VGG16 (random weights) + dense 1024 + dense 10, SGD Nesterov, %sx%s batch %s, "
      "%s threads; load average after: %s" % (g0["size"], g0["size"], g0["batch"], g0["threads"], sys.argv[2]))
print("%-22s %12s %12s %7s %9s %9s  %s" % ("config", "graft img/s", "torch img/s", "ratio", "graft MB",
      "torch MB", "torch variant / mean img/s g,t"))
for mode in ("block5", "full"):
    g = next((r for r in rows if r["who"] == "graft" and r["mode"] == mode), None)
    t = next((r for r in rows if r["who"] == "torch" and r["mode"] == mode), None)
    if not g or not t:
        print("%-22s (missing)" % mode)
        continue
    gi, ti = float(g["img_s"]), float(t["img_s"])
    print("%-22s %12.1f %12.1f %6.2fx %9.0f %9.0f  %s / %s, %s" % (
        mode + (" (blocks 1-4 frozen)" if mode == "block5" else " (all train)"), gi, ti, gi / ti,
        float(g["rss_mb"]), float(t["rss_mb"]), t["variant"], g["mean_img_s"], t["mean_img_s"]))
c = next((r for r in rows if r["who"] == "graft" and r["mode"] == "block5_cached"), None)
t = next((r for r in rows if r["who"] == "torch" and r["mode"] == "block5"), None)
if c:
    print("%-22s %12.1f %12s %6.2fx %9.0f %9s  (graft alone; vs the torch block5 step above; "
          "NOT like for like)" % ("block5 cached features", float(c["img_s"]), "-",
          float(c["img_s"]) / float(t["img_s"]) if t else float("nan"), float(c["rss_mb"]), "-"))
print("(img/s: best round of whole steps; graft OMP_WAIT_POLICY=PASSIVE, torch %s; "
      "target graft/torch >= 1.15 on block5 and full)" % sys.argv[3])
PY
