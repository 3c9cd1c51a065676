#!/usr/bin/python3
"""peer_finetune.py — the PyTorch peer of bench_finetune: one training step
of torchvision's vgg16().features (random weights) + the seed head
(Flatten, Linear 512*s*s -> 1024, ReLU, Linear -> 10), cross-entropy (the
log-softmax is inside the loss: the same math as graft's softmax + CCE),
SGD lr 0.01 momentum 0.9 Nesterov, on a fixed random batch, same threads.

  peer_finetune.py MODE H B SECONDS THREADS [TURN_IN TURN_OUT]
                                                 -> one line of key=value
  MODE block5: blocks 1-4 (features[:24]) run under torch.no_grad() in eval
               mode, block5 + head train (like for like with graft's block5);
       full:   everything trains.
  With the two FIFOs the measured rounds alternate with graft's (see
  bench_finetune.c): both see the same background load.

PyTorch gets its best shot: NCHW and channels_last are both timed briefly
and the faster one is measured."""
import os
import resource
import sys
import time

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg

from peer_turns import timed

# features[:CUT] = blocks 1-4 (conv+relu pairs and the 4 pools); features[CUT] = block5_conv1
CUT = 24
VARIANTS = ["nchw", "channels_last"]


def build(mode, h, b, channels_last):
    """The model, batch, optimizer and loss of one step (peers_finetune.py
    uses it too): (frozen prefix or None, trained part, x, y, opt, loss_fn)."""
    torch.manual_seed(0)
    # exactly torchvision.models.vgg16().features, without building (and
    # initializing) the 124M-parameter classifier it would throw away
    features = tv_vgg.make_layers(tv_vgg.cfgs["D"], batch_norm=False)
    s = h // 32
    head = nn.Sequential(nn.Flatten(), nn.Linear(512 * s * s, 1024), nn.ReLU(inplace=True),
                         nn.Linear(1024, 10))
    if mode == "block5":
        frozen, trained = features[:CUT].eval(), nn.Sequential(features[CUT:], head).train()
        for p in frozen.parameters():
            p.requires_grad_(False)
    else:
        frozen, trained = None, nn.Sequential(features, head).train()
    x = torch.rand(b, 3, h, h) * 255 - 128
    y = torch.randint(0, 10, (b,))
    if channels_last:
        if frozen is not None:
            frozen = frozen.to(memory_format=torch.channels_last)
        trained = trained.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in trained.parameters() if p.requires_grad], lr=0.01,
                          momentum=0.9, nesterov=True)
    return frozen, trained, x, y, opt, nn.CrossEntropyLoss()


def make(variant, mode, h, b):
    frozen, trained, x, y, opt, loss_fn = build(mode, h, b, variant == "channels_last")
    last = [0.0]

    def step():
        if frozen is not None:
            with torch.no_grad():
                f = frozen(x)
        else:
            f = x
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(trained(f), y)
        loss.backward()
        opt.step()
        last[0] = loss.item()
    n_trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    return step, last, n_trainable


def main():
    mode, h, b, secs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        float(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    best, best_v = 0.0, None
    for v in VARIANTS:
        try:
            r = timed(make(v, mode, h, b)[0], b, 1.0)[0]
        except Exception as e:  # a variant this build lacks
            print("peer: variant %s failed: %s" % (v, e), file=sys.stderr)
            continue
        if r > best:
            best, best_v = r, v
    turn = None
    if len(sys.argv) >= 8:
        turn = (os.open(sys.argv[6], os.O_RDWR), os.open(sys.argv[7], os.O_RDWR))
    run, last, n_trainable = make(best_v, mode, h, b)
    run()
    loss0 = last[0]
    ips, mean, steps = timed(run, b, secs, turn)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("who=torch mode=%s size=%d batch=%d threads=%d img_s=%.2f mean_img_s=%.2f steps=%d "
          "loss0=%.4f loss=%.4f trainable=%d variant=%s rss_mb=%.1f torch=%s"
          % (mode, h, b, torch.get_num_threads(), ips, mean, steps, loss0, last[0], n_trainable,
             best_v, rss, torch.__version__))


if __name__ == "__main__":
    main()
