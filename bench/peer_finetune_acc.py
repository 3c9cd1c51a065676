#!/usr/bin/python3
"""peer_finetune_acc.py — the PyTorch peer of graft's fine-tuning recipe
(bench/bench_finetune_acc.sh, issue #5's 30-minute best-accuracy run).

The recipe, written the way a PyTorch user would (no code shared with graft;
the network rebuild and CIFAR reader come from peer_recipe.py):
  base   Tiny Darknet layers 0..--cut (default 14) from tiny.cfg + tiny.weights;
         darknet layers 0..--unfreeze-1 frozen, the rest trains (conv weights,
         batch-norm gamma and beta).  Batch norm stays in eval mode everywhere
         (stored statistics: the Keras fine-tuning guide's advice, graft's
         default without --bn-train).
  input  CIFAR-10 -> RGB [0,1], resized 32 -> --size (bilinear, half-pixel);
         with --augment (default) each training image is zero-padded by 4 and
         cropped back at a random offset, and flipped with probability 1/2
         (graft's --augment: after the resize, before the network).
  std    a fixed per-feature standardization of the cut's output: mean and
         (population) std of the NHWC features over the training set, measured
         once before training with the initial weights, no augmentation; a
         constant feature gets std 1 (graft's standardize layer).
  head   NHWC flatten, dense 1024 relu, dense 10 (softmax in the loss),
         Glorot-uniform kernels, zero biases.
  optim  SGD momentum 0.9 Nesterov, lr 0.01 for the head and
         0.01 * --base-lr-mult (0.1) for the unfrozen base; the rate follows a
         cosine from lr to 0 over all the run's steps, stepped per batch;
         categorical cross-entropy, batch 32, reshuffled each epoch.
  budget --budget S (seconds of wall time from the start of the process): the
         peer times --calib-steps training steps on a throw-away copy of the
         model, then runs the most epochs (at most --epochs) whose projected
         time, with the standardization pass and the test, fits in S.  The
         cosine then spans those epochs, as graft's spans its --epochs.

Prints `key value` lines: epochs, epoch_seconds (one per epoch), train_seconds,
test_accuracy, test_loss, wall_seconds.
"""
import argparse, copy, math, os, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_recipe import darknet_base, read_cifar, prep, Head  # noqa: E402

T_START = time.time()


def augment(x, gen, pad=4):
    """Zero pad by `pad`, crop back at a random offset, flip with p 1/2 (per image)."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
    flip = torch.randint(0, 2, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        oy, ox = int(off[i, 0]), int(off[i, 1])
        c = xp[i, :, oy:oy + h, ox:ox + w]
        out[i] = c.flip(2) if flip[i] else c
    return out


class Net(nn.Module):
    def __init__(self, frozen, trainable, mean, std, head):
        super().__init__()
        self.frozen, self.trainable, self.head = frozen, trainable, head
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def features(self, x):
        with torch.no_grad():
            x = self.frozen(x)
        return self.trainable(x)

    def forward(self, x):
        f = self.features(x).permute(0, 2, 3, 1).flatten(1)
        f = (f - self.mean) / self.std
        return self.head.d2(F.relu(self.head.d1(f)))

    def train(self, mode=True):       # batch norm stays in eval mode (stored statistics)
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self


def make_opt(net, lr, mult, total_steps):
    opt = torch.optim.SGD([{"params": [p for p in net.trainable.parameters()], "lr": lr * mult},
                           {"params": list(net.head.parameters()), "lr": lr}],
                          lr=lr, momentum=0.9, nesterov=True)
    cos = lambda it: 0.5 * (1.0 + math.cos(math.pi * min(it, total_steps) / total_steps))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, [cos, cos])


def step(net, opt, sched, x, y):
    loss = F.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def batch_input(x_u8, idx, a, gen):
    x = prep(x_u8[idx], a.size, "darknet")
    return augment(x, gen) if a.augment else x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cfg", required=True), ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True), ap.add_argument("--test", required=True)
    ap.add_argument("--cut", type=int, default=14)
    ap.add_argument("--unfreeze", type=int, default=9, help="first darknet layer that trains")
    ap.add_argument("--base-lr-mult", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=25, help="at most this many epochs")
    ap.add_argument("--budget", type=float, default=0, help="seconds of wall time (0: run --epochs)")
    ap.add_argument("--calib-steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0), ap.add_argument("--test-limit", type=int, default=0)
    ap.add_argument("--no-augment", dest="augment", action="store_false")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    full = darknet_base(a.cfg, a.weights, a.cut)
    k = len(darknet_base(a.cfg, a.weights, a.unfreeze - 1)) if a.unfreeze > 0 else 0
    frozen, trainable = full[:k], full[k:]
    for p in frozen.parameters():
        p.requires_grad_(False)
    for m in trainable.modules():     # gamma/beta train; running statistics never change (eval mode)
        if isinstance(m, nn.BatchNorm2d):
            m.weight.requires_grad_(True), m.bias.requires_grad_(True)
    full.eval()
    x_tr, y_tr = read_cifar(a.data, a.limit)
    x_te, y_te = read_cifar(a.test, a.test_limit)
    n = x_tr.shape[0]

    # the standardization: training-set mean/std of the cut's output, initial weights
    t0 = time.time()
    s1 = s2 = None
    with torch.no_grad():
        for s in range(0, n, 256):
            f = full(prep(x_tr[s:s + 256], a.size, "darknet")).permute(0, 2, 3, 1).flatten(1).double()
            s1 = f.sum(0) if s1 is None else s1 + f.sum(0)
            s2 = (f * f).sum(0) if s2 is None else s2 + (f * f).sum(0)
    mean = s1 / n
    var = s2 / n - mean * mean
    std = torch.where(var > 1e-12, var.clamp_min(0).sqrt(), torch.ones_like(var))
    std_s = time.time() - t0
    print("standardize_seconds %.2f" % std_s, flush=True)

    head = Head(mean.numel(), 10, gen)
    net = Net(frozen, trainable, mean.float(), std.float(), head)
    steps_per_epoch = (n + a.batch - 1) // a.batch

    epochs = a.epochs
    if a.budget > 0:   # time a few steps on a copy, then fit the epochs into the budget
        probe = copy.deepcopy(net)
        popt, psched = make_opt(probe, a.lr, a.base_lr_mult, 10 ** 9)
        probe.train()
        perm = torch.randperm(n, generator=gen)
        ts = None
        for s in range(a.calib_steps + 5):
            if s == 5:
                ts = time.time()   # the first steps warm up
            idx = perm[(s * a.batch) % n:(s * a.batch) % n + a.batch]
            step(probe, popt, psched, batch_input(x_tr, idx, a, gen), y_tr[idx])
        per_step = (time.time() - ts) / a.calib_steps
        del probe, popt, psched
        test_est = x_te.shape[0] / (n / std_s)      # inference at the standardization pass's rate
        left = a.budget - (time.time() - T_START) - test_est
        fit = int(left // (per_step * steps_per_epoch))
        print("# calibration: %.1f ms/step -> %.0f s/epoch; %.0f s left for training: %d epochs fit"
              % (1e3 * per_step, per_step * steps_per_epoch, left, fit), flush=True)
        epochs = max(1, min(a.epochs, fit))
    print("epochs %d" % epochs, flush=True)

    opt, sched = make_opt(net, a.lr, a.base_lr_mult, epochs * steps_per_epoch)
    t_train = time.time()
    for ep in range(epochs):
        t0 = time.time()
        net.train()
        perm = torch.randperm(n, generator=gen)
        lsum, seen = 0.0, 0
        for s in range(0, n, a.batch):
            idx = perm[s:s + a.batch]
            lsum += step(net, opt, sched, batch_input(x_tr, idx, a, gen), y_tr[idx]) * len(idx)
            seen += len(idx)
        print("epoch_seconds %.2f  # epoch %d loss %.4f lr %.6f" % (time.time() - t0, ep + 1, lsum / seen,
              opt.param_groups[1]["lr"]), flush=True)
    print("train_seconds %.2f" % (time.time() - t_train))

    net.eval()
    correct, lsum = 0, 0.0
    with torch.no_grad():
        for s in range(0, x_te.shape[0], 256):
            logits = net(prep(x_te[s:s + 256], a.size, "darknet"))
            lsum += F.cross_entropy(logits, y_te[s:s + 256], reduction="sum").item()
            correct += (logits.argmax(1) == y_te[s:s + 256]).sum().item()
    print("test_accuracy %.4f" % (correct / x_te.shape[0]))
    print("test_loss %.4f" % (lsum / x_te.shape[0]))
    print("wall_seconds %.1f" % (time.time() - T_START))


if __name__ == "__main__":
    sys.exit(main())
