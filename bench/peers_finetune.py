"""peers_finetune.py — a current-PyTorch peer of bench_finetune (run by
bench/peers.sh with the peers' venv python): one training step of
torchvision's vgg16().features (random weights) + the seed head (Flatten,
Linear -> 1024, ReLU, Linear -> 10), cross-entropy, SGD lr 0.01 momentum 0.9
Nesterov, on a fixed random batch — the step of bench/peer_finetune.py, with
the variants a PyTorch 2.x user has.

  peers_finetune.py PEER MODE H B SECONDS THREADS [TURN_IN TURN_OUT READY_FILE]
  PEER: torch_nchw, torch_cl (eager, channels_last), torch_compile_cl
        (torch.compile, inductor, of the frozen prefix and of the trained
        part, channels_last; measured after warm-up)
  MODE: block5 (features[:24] frozen, run under no_grad in eval mode; block5
        + head train) or full (everything trains)."""
import os
import resource
import sys
import time

import torch

from peer_finetune import build
from peer_turns import timed



def make(peer, mode, h, b):
    frozen, trained, x, y, opt, loss_fn = build(mode, h, b, "_cl" in peer)
    n_trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    fwd_frozen, fwd_trained = frozen, trained
    if "compile" in peer:
        fwd_trained = torch.compile(trained)
        if frozen is not None:
            fwd_frozen = torch.compile(frozen)
    last = [0.0]

    def step():
        if fwd_frozen is not None:
            with torch.no_grad():
                f = fwd_frozen(x)
        else:
            f = x
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(fwd_trained(f), y)
        loss.backward()
        opt.step()
        last[0] = loss.item()
    return step, last, n_trainable


def main():
    peer, mode, h, b, secs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
        float(sys.argv[5]), int(sys.argv[6])
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    run, last, n_trainable = make(peer, mode, h, b)
    for _ in range(3):   # warm-up (torch.compile compiles forward and backward here)
        run()
    loss0 = last[0]
    warm = time.perf_counter() - t0
    turn = None
    if len(sys.argv) >= 10:
        turn = (os.open(sys.argv[7], os.O_RDWR), os.open(sys.argv[8], os.O_RDWR))
        open(sys.argv[9], "w").close()
    ips, mean, steps = timed(run, b, secs, turn)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("who=peer peer=%s mode=%s size=%d batch=%d threads=%d img_s=%.2f mean_img_s=%.2f steps=%d "
          "loss0=%.4f loss=%.4f trainable=%d warmup_s=%.1f rss_mb=%.1f desc=torch_%s"
          % (peer, mode, h, b, torch.get_num_threads(), ips, mean, steps, loss0, last[0], n_trainable,
             warm, rss, torch.__version__))


if __name__ == "__main__":
    main()
