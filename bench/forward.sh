#!/usr/bin/env bash
# forward.sh — VGG16 base forward: graft vs PyTorch (bench/peer_forward.py),
# 32x32 batch 64 and 224x224 batch 8, fp32 and bf16, same thread count,
# each config in its own pair of processes (so peak RSS is per config),
# plus the measured FMA peak.  Usage: bench/forward.sh BENCH_BINARY [SECONDS]
set -eu
bin=$1; secs=${2:-5}
py=/usr/bin/python3
out=$(mktemp); trap 'rm -f "$out"' EXIT
"$bin" fma 2 >>"$out"
threads=$(sed -n 's/.*threads=\([0-9]*\).*/\1/p' "$out" | head -1)
# graft and PyTorch run side by side, their measured rounds taking turns
# (a token passed through two FIFOs), so both see the same background load.
fifo=$(mktemp -d); trap 'rm -f "$out"; rm -rf "$fifo"' EXIT
mkfifo "$fifo/to_graft" "$fifo/to_torch"
for cfg in "32 64 fp32" "224 8 fp32" "32 64 bf16" "224 8 bf16"; do
  set -- $cfg
  # this shell holds both FIFOs open (read+write) for the whole pair, so the
  # first token is never lost before graft opens its end
  exec 3<>"$fifo/to_graft" 4<>"$fifo/to_torch"
  printf t >&3   # graft takes the first round
  timeout 900 "$bin" vgg "$1" "$2" "$3" "$secs" "$fifo/to_graft" "$fifo/to_torch" >"$fifo/g" &
  gpid=$!
  timeout 900 "$py" bench/peer_forward.py "$1" "$2" "$3" "$secs" "$threads" "$fifo/to_torch" \
    "$fifo/to_graft" >"$fifo/t" &
  tpid=$!
  wait "$gpid" || echo "graft bench failed ($cfg)" >&2
  wait "$tpid" || echo "torch peer failed ($cfg)" >&2
  exec 3>&- 4>&-
  cat "$fifo/g" "$fifo/t" >>"$out"
done
"$py" - "$out" <<'PY'
import sys
rows = [dict(kv.split("=", 1) for kv in l.split()) for l in open(sys.argv[1]) if l.startswith("who=")]
fma = next(r for r in rows if r["who"] == "fma")
peak = float(fma["gflops"])
print("VGG16 base forward (random weights), %s threads; measured FMA peak %.1f GFLOP/s (%s)"
      % (fma["threads"], peak, fma["isa"]))
print("%-14s %5s %12s %12s %7s %9s %9s %10s  %s" % ("input", "prec", "graft img/s", "torch img/s",
      "ratio", "graft MB", "torch MB", "graft/peak", "torch variant"))
for g in (r for r in rows if r["who"] == "graft"):
    t = next(r for r in rows if r["who"] == "torch" and r["size"] == g["size"]
             and r["batch"] == g["batch"] and r["prec"] == g["prec"])
    gi, ti = float(g["img_s"]), float(t["img_s"])
    print("%-14s %5s %12.1f %12.1f %6.2fx %9.0f %9.0f %9.0f%%  %s" % (
        "%sx%s b%s" % (g["size"], g["size"], g["batch"]), g["prec"], gi, ti, gi / ti,
        float(g["rss_mb"]), float(t["rss_mb"]), 100 * float(g["gflops"]) / peak, t["variant"]))
print("(graft/peak = VGG16 direct-conv FLOPs x img/s / f32 FMA peak: bf16 and Winograd (f32 3x3) can exceed 100%)")
PY
