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

--tflite FILE (issue 19's recipe): the base is a Coral TFLite MobileNet
(weights dequantized, read by tests/fixtures/gen_tflite.py's own flatbuffer
reader) interpreted op by op up to --cut-op (default: the global average
pool), ops from --unfreeze-op on training; input tf-style (x/127.5 - 1).
--ema DECAY keeps graft's moving average (decay min(DECAY, (1+k)/(10+k))
after step k; evaluation uses it), --tta flip averages the probabilities of
each image and its mirror, --val-split F holds out F of the training data
(seeded) and evaluates it after each epoch, as graft's --val-split does.

Prints `key value` lines: epochs, epoch_seconds (one per epoch), train_seconds,
val_accuracy (per epoch, with --val-split), test_accuracy, test_loss, wall_seconds.
"""
import argparse, copy, math, os, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_recipe import darknet_base, read_cifar, prep, Head  # noqa: E402

_TFL = None


def tflite_graph(path):
    """The TFLite graph read by tests/fixtures/gen_tflite.py (its own flatbuffer reader)."""
    global _TFL
    if _TFL is None:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
        import gen_tflite as _TFL   # noqa: F811
        torch.set_grad_enabled(True)   # (the fixture script turns autograd off at import)
    return _TFL, _TFL.load(path)


class TFLiteBase(nn.Module):
    """Ops 0..upto of a TFLite MobileNet (float weights), ops from `first` on trainable."""

    def __init__(self, path, upto, first):
        super().__init__()
        T, g = tflite_graph(path)
        self.inp, self.first = g["input"], first
        self.same_pad, self.act = T.same_pad, T.act   # (functions: a deepcopy of the module shares them)
        self.ops = g["ops"][:upto + 1]
        self.w, self.b = nn.ParameterDict(), nn.ParameterDict()
        for i, op in enumerate(self.ops):
            if op["code"] in (3, 4):
                w = torch.from_numpy(T.const(g, op["inputs"][1]))
                w = w.permute(0, 3, 1, 2) if op["code"] == 3 else w.permute(3, 0, 1, 2)
                self.w[str(i)] = nn.Parameter(w.contiguous(), requires_grad=i >= first)
                self.b[str(i)] = nn.Parameter(torch.from_numpy(T.const(g, op["inputs"][2])), requires_grad=i >= first)

    def forward(self, x):
        val = {self.inp: x}
        grad = torch.is_grad_enabled()
        for i, op in enumerate(self.ops):
            with torch.set_grad_enabled(grad and i >= self.first):
                c, ins = op["code"], op["inputs"]
                if c in (3, 4):
                    xin = val[ins[0]]
                    wt = self.w[str(i)]
                    k, st = wt.shape[2], op["stride"]
                    xp = self.same_pad(xin, k, st) if op["pad"] == 0 else xin
                    y = self.act(F.conv2d(xp, wt, self.b[str(i)], stride=st, groups=1 if c == 3 else xin.shape[1]),
                              op["act"])
                elif c == 0:
                    y = self.act(val[ins[0]] + val[ins[1]], op["act"])
                elif c == 1:
                    y = val[ins[0]].mean(dim=(2, 3), keepdim=True)
                else:
                    raise SystemExit("peer_finetune_acc: TFLite op %d not supported" % c)
            val[op["outputs"][0]] = y
        return y

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


def step(net, opt, sched, x, y, ls=0.0):
    loss = F.cross_entropy(net(x), y, label_smoothing=ls)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def net_input(x_u8, a):
    x = prep(x_u8, a.size, "darknet")              # RGB [0, 1]
    return x * 2.0 - 1.0 if a.tflite else x         # tf: x / 127.5 - 1


def batch_input(x_u8, idx, a, gen):
    x = net_input(x_u8[idx], a)
    return augment(x, gen) if a.augment else x


class Ema:
    """graft's --ema: e <- d e + (1 - d) w, d = min(decay, (1 + k) / (10 + k)) after step k."""

    def __init__(self, net, decay):
        self.decay, self.k = decay, 0
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.avg = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self):
        self.k += 1
        d = min(self.decay, (1.0 + self.k) / (10.0 + self.k))
        for e, p in zip(self.avg, self.params):
            e.mul_(d).add_(p.detach(), alpha=1.0 - d)

    @torch.no_grad()
    def swap(self):
        for e, p in zip(self.avg, self.params):
            t = p.detach().clone()
            p.copy_(e)
            e.copy_(t)


@torch.no_grad()
def evaluate(net, x_u8, y, a):
    """Mean loss and accuracy; --tta flip: the mean of the image's and its mirror's probabilities."""
    net.eval()
    correct, lsum = 0, 0.0
    for s in range(0, x_u8.shape[0], 256):
        x = net_input(x_u8[s:s + 256], a)
        p = F.softmax(net(x), 1)
        if a.tta == "flip":
            p = 0.5 * (p + F.softmax(net(x.flip(3)), 1))
        lsum += F.nll_loss(p.clamp(1e-7, 1 - 1e-7).log(), y[s:s + 256], reduction="sum").item()
        correct += (p.argmax(1) == y[s:s + 256]).sum().item()
    return lsum / x_u8.shape[0], correct / x_u8.shape[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cfg"), ap.add_argument("--weights")
    ap.add_argument("--tflite", help="a Coral TFLite MobileNet instead of --cfg/--weights")
    ap.add_argument("--cut-op", type=int, default=-1, help="tflite: the last op kept (default: the average pool)")
    ap.add_argument("--unfreeze-op", type=int, default=47, help="tflite: the first op that trains")
    ap.add_argument("--ema", type=float, default=0.0)
    ap.add_argument("--tta", default="none", choices=["none", "flip"])
    ap.add_argument("--val-split", type=float, default=0.0)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
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

    if a.tflite:
        _, g = tflite_graph(a.tflite)
        cut = a.cut_op if a.cut_op >= 0 else next(i for i, op in enumerate(g["ops"]) if op["code"] == 1)
        full = TFLiteBase(a.tflite, cut, a.unfreeze_op)
        frozen, trainable = nn.Identity(), full     # (TFLiteBase runs its frozen ops without autograd)
    else:
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
    x_va = y_va = None
    if a.val_split > 0:   # a seeded held-out part, evaluated after every epoch (graft's --val-split)
        perm = torch.randperm(x_tr.shape[0], generator=torch.Generator().manual_seed(a.seed + 1))
        nv = int(round(a.val_split * x_tr.shape[0]))
        x_va, y_va = x_tr[perm[:nv]], y_tr[perm[:nv]]
        x_tr, y_tr = x_tr[perm[nv:]], y_tr[perm[nv:]]
    n = x_tr.shape[0]

    # the standardization: training-set mean/std of the cut's output, initial weights
    t0 = time.time()
    s1 = s2 = None
    with torch.no_grad():
        for s in range(0, n, 256):
            f = full(net_input(x_tr[s:s + 256], a)).permute(0, 2, 3, 1).flatten(1).double()
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
            step(probe, popt, psched, batch_input(x_tr, idx, a, gen), y_tr[idx], a.label_smoothing)
        per_step = (time.time() - ts) / a.calib_steps
        del probe, popt, psched
        tta = 2 if a.tta == "flip" else 1
        test_est = tta * x_te.shape[0] / (n / std_s)      # inference at the standardization pass's rate
        val_est = tta * (x_va.shape[0] if x_va is not None else 0) / (n / std_s)
        left = a.budget - (time.time() - T_START) - test_est
        fit = int(left // (per_step * steps_per_epoch + val_est))
        print("# calibration: %.1f ms/step -> %.0f s/epoch; %.0f s left for training: %d epochs fit"
              % (1e3 * per_step, per_step * steps_per_epoch, left, fit), flush=True)
        epochs = max(1, min(a.epochs, fit))
    print("epochs %d" % epochs, flush=True)

    opt, sched = make_opt(net, a.lr, a.base_lr_mult, epochs * steps_per_epoch)
    ema = Ema(net, a.ema) if a.ema > 0 else None
    t_train = time.time()
    for ep in range(epochs):
        t0 = time.time()
        net.train()
        perm = torch.randperm(n, generator=gen)
        lsum, seen = 0.0, 0
        for s in range(0, n, a.batch):
            idx = perm[s:s + a.batch]
            lsum += step(net, opt, sched, batch_input(x_tr, idx, a, gen), y_tr[idx], a.label_smoothing) * len(idx)
            seen += len(idx)
            if ema:
                ema.update()
        va = ""
        if x_va is not None:
            if ema:
                ema.swap()
            vl, vacc = evaluate(net, x_va, y_va, a)
            if ema:
                ema.swap()
            va = " val_loss %.4f val_accuracy %.4f" % (vl, vacc)
        print("epoch_seconds %.2f  # epoch %d loss %.4f lr %.6f%s" % (time.time() - t0, ep + 1, lsum / seen,
              opt.param_groups[1]["lr"], va), flush=True)
    print("train_seconds %.2f" % (time.time() - t_train))

    if ema:
        ema.swap()   # the model is the moving average
    tl, tacc = evaluate(net, x_te, y_te, a)
    print("test_accuracy %.4f" % tacc)
    print("test_loss %.4f" % tl)
    print("wall_seconds %.1f" % (time.time() - T_START))


if __name__ == "__main__":
    sys.exit(main())
