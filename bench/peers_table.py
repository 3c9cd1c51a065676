#!/usr/bin/python3
"""peers_table.py — the table of bench/peers.sh from its result files:
  peers_table.py OUT_DIR VERSIONS_FILE "LOAD"
forward.txt / finetune.txt: key=value lines (graft's and each peer's);
recipe.txt: `name.key value` lines.  Ratios are graft / the best peer
variant of the line (> 1: graft ahead), against the issue's targets."""
import os
import sys

out, vfile, load = sys.argv[1], sys.argv[2], sys.argv[3]


def kv(path):
    if not os.path.exists(path):
        return []
    return [dict(t.split("=", 1) for t in l.split() if "=" in t) for l in open(path) if l.startswith("who=")]


def loads(path):
    return [l.strip() for l in open(path) if l.startswith("load")] if os.path.exists(path) else []


vers = " ".join(l.strip().replace(" ", "=") for l in open(vfile)) if os.path.exists(vfile) else "?"
print("\n== graft vs the peers (issue 18); peers: %s; load average now %s" % (vers, load))

rows = kv(os.path.join(out, "forward.txt"))
if rows:
    fma = next((r for r in rows if r["who"] == "fma"), None)
    print("\nVGG16 base forward (random weights), img/s, best round, %s threads each, taking turns%s"
          % (next((r["threads"] for r in rows if r["who"] == "graft"), "?"),
             "; FMA peak %s GFLOP/s (%s)" % (fma["gflops"], fma["isa"]) if fma else ""))
    print("%-13s %5s %9s %10s  %-26s %8s  %s" % ("input", "prec", "graft", "best peer", "(variant)", "ratio",
                                                  "target 1.15x; every peer variant img/s"))
    for size, batch in (("32", "64"), ("224", "8")):
        for prec in ("fp32", "bf16"):
            g = next((r for r in rows if r["who"] == "graft" and r["size"] == size and r["batch"] == batch
                      and r["prec"] == prec), None)
            ps = [r for r in rows if r["who"] == "peer" and r["size"] == size and r["batch"] == batch
                  and ("bf16" in r["peer"]) == (prec == "bf16")]
            if not g or not ps:
                print("%-13s %5s (missing)" % ("%sx%s b%s" % (size, size, batch), prec))
                continue
            best = max(ps, key=lambda r: float(r["img_s"]))
            ratio = float(g["img_s"]) / float(best["img_s"])
            print("%-13s %5s %9.1f %10.1f  %-26s %7.2fx  %s %s" % (
                "%sx%s b%s" % (size, size, batch), prec, float(g["img_s"]), float(best["img_s"]),
                "(%s)" % best["peer"], ratio, "meets" if ratio >= 1.15 else "SHORT",
                " ".join("%s=%.1f" % (r["peer"], float(r["img_s"])) for r in ps)))
    descs = sorted({r["peer"] + ":" + r.get("desc", "") for r in rows if r["who"] == "peer"
                    and r["peer"].startswith("ov")})
    if descs:
        print("  OpenVINO as compiled: " + "; ".join(descs))
    print("  RSS MB: " + " ".join("%s/%s%s=%.0f" % (r.get("peer", "graft"), r["size"], r["prec"] if "prec" in r else "",
                                                   float(r["rss_mb"])) for r in rows if "rss_mb" in r))
    print("  " + "; ".join(loads(os.path.join(out, "forward.txt"))))

rows = kv(os.path.join(out, "finetune.txt"))
if rows:
    print("\nFine-tuning step, VGG16 (random weights) + dense 1024 + dense 10, SGD Nesterov, 32x32 batch 64, img/s")
    print("%-24s %9s %10s  %-20s %8s  %s" % ("config", "graft", "best peer", "(variant)", "ratio",
                                             "target 1.15x; every variant (mean img/s)"))
    for mode in ("block5", "full"):
        g = next((r for r in rows if r["who"] == "graft" and r["mode"] == mode), None)
        ps = [r for r in rows if r["who"] == "peer" and r["mode"] == mode]
        if not g or not ps:
            print("%-24s (missing)" % mode)
            continue
        best = max(ps, key=lambda r: float(r["img_s"]))
        ratio = float(g["img_s"]) / float(best["img_s"])
        print("%-24s %9.1f %10.1f  %-20s %7.2fx  %s graft(%s) %s" % (
            mode + (" (blocks 1-4 frozen)" if mode == "block5" else " (all train)"), float(g["img_s"]),
            float(best["img_s"]), "(%s)" % best["peer"], ratio, "meets" if ratio >= 1.15 else "SHORT",
            g["mean_img_s"], " ".join("%s=%.1f(%s)" % (r["peer"], float(r["img_s"]), r["mean_img_s"])
                                      for r in ps)))
    print("  RSS MB: " + " ".join("%s/%s=%.0f" % (r.get("peer", "graft"), r["mode"], float(r["rss_mb"]))
                                  for r in rows))
    print("  " + "; ".join(loads(os.path.join(out, "finetune.txt"))))

rf = os.path.join(out, "recipe.txt")
if os.path.exists(rf):
    rec = {}
    for l in open(rf):
        k, _, v = l.strip().partition(" ")
        rec[k] = v
    g = lambda n, k: rec.get("%s.%s" % (n, k), "")

    def f(n, k):
        try:
            return float(g(n, k))
        except ValueError:
            return None
    print("\nThe seed recipe end to end (real CIFAR-10, frozen base, %s epochs; wall s incl. data, features, test;"
          % (int(f("graft_vgg16", "epochs_run") or 20)))
    print(" the peers ran %s epoch(s): their wall is extrapolated = wall - epochs run + 20 x mean epoch)" %
          (g("keras_vgg16", "epochs_run") or "1"))
    print("%-40s %9s %12s %8s %9s  %s" % ("run", "wall s", "20-ep wall", "RSS MB", "accuracy", "load before"))
    for n, label in (("graft_vgg16", "graft, VGG16 32x32 (raw Keras recipe)"),
                     ("keras_vgg16", "Keras 3 seed program, VGG16 32x32"),
                     ("torch_vgg16", "PyTorch usual loop, VGG16 32x32"),
                     ("graft_darknet64", "graft, Tiny Darknet 64x64"),
                     ("torch_darknet64", "PyTorch usual loop, Tiny Darknet 64x64")):
        if g(n, "wall"):
            print("%-40s %9s %12s %8s %9s  %s %s" % (label, g(n, "wall"), g(n, "wall_extrapolated"), g(n, "rss_mb"),
                                                     g(n, "accuracy") or "-", g(n, "load_before"),
                                                     g(n, "versions")))
    gw = f("graft_vgg16", "wall_extrapolated")
    for n, label in (("keras_vgg16", "Keras 3"), ("torch_vgg16", "PyTorch")):
        w = f(n, "wall_extrapolated")
        if gw and w:
            print("  speed-up vs %-8s %6.1fx  (target 10x: %s)" % (label, w / gw, "meets" if w / gw >= 10 else "SHORT"))
    gr, tr = f("graft_darknet64", "rss_mb"), f("torch_darknet64", "rss_mb")
    if gr and tr:
        print("  peak RSS at 64x64: graft %.0f MB / PyTorch %.0f MB = %.2fx  (target <= 0.5x: %s)"
              % (gr, tr, gr / tr, "meets" if gr / tr <= 0.5 else "SHORT"))
    print("  (random VGG16 weights: accuracy is not a figure of merit here; %s)" % g("recipe", "load_after"))
