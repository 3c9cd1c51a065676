#!/usr/bin/python3
"""peer_forward.py — the PyTorch peer of bench_forward: torchvision's
vgg16().features (random weights), eval + no_grad, on the same thread count.

  peer_forward.py H B fp32|bf16 SECONDS THREADS [TURN_IN TURN_OUT]
                                                 -> one line of key=value
  With the two FIFOs the measured rounds alternate with graft's (see
  bench_forward.c): both see the same background load.

PyTorch gets its best shot: every variant below is timed briefly and the
fastest one is measured (fp32: torch.utils.mkldnn or channels_last; bf16:
autocast or a converted model, NCHW or channels_last)."""
import os
import resource
import sys
import time

import torch
import torch.utils.mkldnn
from torchvision.models import vgg as tv_vgg

from peer_turns import timed


def variants(prec):
    # contiguous NCHW fp32 and plain .bfloat16() NCHW always lost to these here
    if prec == "fp32":
        return ["mkldnn", "channels_last"]
    return ["autocast", "autocast_channels_last", "bfloat16_channels_last"]


def make(variant, h, b):
    torch.manual_seed(0)
    # exactly torchvision.models.vgg16().features, without building (and
    # initializing) the 124M-parameter classifier it would throw away
    model = tv_vgg.make_layers(tv_vgg.cfgs["D"], batch_norm=False).eval()
    x = torch.rand(b, 3, h, h) * 255 - 128
    ctx = None
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if variant == "mkldnn":
        model = torch.utils.mkldnn.to_mkldnn(model)
        x = x.to_mkldnn()
    if variant.startswith("bfloat16"):
        model = model.bfloat16()
        x = x.bfloat16()
    if variant.startswith("autocast"):
        ctx = lambda: torch.autocast("cpu", dtype=torch.bfloat16)

    def run():
        with torch.no_grad():
            if ctx:
                with ctx():
                    return model(x)
            return model(x)
    return run


def main():
    h, b, prec, secs, threads = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], \
        float(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    best, best_v = 0.0, None
    for v in variants(prec):
        try:
            r = timed(make(v, h, b), b, 0.3)[0]
        except Exception as e:  # a variant this build lacks
            print("peer: variant %s failed: %s" % (v, e), file=sys.stderr)
            continue
        if r > best:
            best, best_v = r, v
    turn = None
    if len(sys.argv) >= 8:
        turn = (os.open(sys.argv[6], os.O_RDWR), os.open(sys.argv[7], os.O_RDWR))
    ips = timed(make(best_v, h, b), b, secs, turn)[0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("who=torch size=%d batch=%d prec=%s threads=%d img_s=%.2f variant=%s rss_mb=%.1f torch=%s"
          % (h, b, prec, torch.get_num_threads(), ips, best_v, rss, torch.__version__))


if __name__ == "__main__":
    main()
