#!/usr/bin/python3
"""peer_recipe.py — the PyTorch peer of `graft train`'s seed recipe (bench/bench_recipe.sh).

The same network, data and recipe as graft, written the way a PyTorch user
would (no code shared with graft):
  base   Tiny Darknet rebuilt from tiny.cfg + tiny.weights up to and including
         darknet layer --cut (default 18, before the 1000-class conv) as
         nn.Conv2d(bias=False) + nn.BatchNorm2d + LeakyReLU(0.1) + maxpool,
         frozen, eval mode.  Darknet's BN is (x - mean) / (sqrt(var) + 1e-6)
         * gamma + beta: stored as BatchNorm2d(eps=0) with running_var =
         (sqrt(var) + 1e-6)^2, which is the same formula.  Darknet's maxpool
         rule (output (in + pad - size) / stride + 1, window from -pad/2) via
         an explicit -inf pad.  Or --base vgg16: torchvision vgg16().features
         with random weights (speed only).
  input  CIFAR-10 .bin records -> RGB [0,1] (darknet preprocessing; vgg16:
         caffe = BGR minus the ImageNet means, 0..255), resized 32 -> --size
         with F.interpolate(bilinear, align_corners=False) (= half-pixel
         bilinear, what graft's antialiased bilinear is when upscaling).
  head   Keras order: the cut's NCHW output permuted to NHWC, flatten, dense
         1024 relu, dense 10 softmax; Glorot-uniform kernels, zero biases.
  optim  SGD(lr 0.01, momentum 0.9, nesterov) with LambdaLR stepped per batch
         = lr / (1 + 1e-6 * iterations) (Keras' decay); categorical
         cross-entropy (log-softmax + NLL), batch 32, reshuffled each epoch.
         PyTorch's and Keras' Nesterov forms coincide for a constant lr; with
         decay 1e-6 the lr changes by ~1e-5 relative over the ~10 steps the
         momentum remembers, a negligible difference.
  loop   --mode usual: PyTorch's usual loop, the frozen base recomputed on
         every batch of every epoch (the timed peer).  --mode cached: the base
         run once per image and the head trained on the stored features; the
         same math (the base is frozen, in eval mode), used to get the
         20-epoch accuracy of long configurations cheaply.

--budget S stops the training after the epoch at which the projected time of
all epochs exceeds S seconds (the test accuracy is then that of fewer epochs).
Prints `key value` lines: epoch_seconds (one per epoch), features_seconds,
train_seconds, test_accuracy, test_loss, images_per_second.
--dump-features N FILE.npy writes the cut features (NHWC) of the first N
training images and exits (to check graft's and the peer's inputs agree).
"""
import argparse, os, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_cfg(text):
    """[(section, {key: value})], darknet's whitespace and comment rules."""
    secs = []
    for line in text.splitlines():
        line = "".join(line.split())
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            secs.append((line[1:-1], {}))
        else:
            k, v = line.split("=", 1)
            secs[-1][1][k] = v
    return secs


class DarknetPool(nn.Module):
    """Darknet's maxpool: out = (in + pad - size) // stride + 1, window at -pad//2."""

    def __init__(self, size, stride, pad):
        super().__init__()
        self.size, self.stride, self.pad = size, stride, pad

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        oh, ow = (h + self.pad - self.size) // self.stride + 1, (w + self.pad - self.size) // self.stride + 1
        l = self.pad // 2
        r = max((ow - 1) * self.stride + self.size - w - l, 0)
        b = max((oh - 1) * self.stride + self.size - h - l, 0)
        if l or r or b:
            x = F.pad(x, (l, r, l, b), value=-float("inf"))
        return F.max_pool2d(x, self.size, self.stride)


def darknet_base(cfg_path, weights_path, cut):
    """nn.Sequential of darknet layers 0..cut (convolutional and maxpool only)."""
    secs = parse_cfg(open(cfg_path).read())
    c = int(secs[0][1].get("channels", 3))
    data = open(weights_path, "rb").read()
    major, minor = np.frombuffer(data, "<i4", 2, 0)
    pos = 12 + (8 if major * 10 + minor >= 2 else 4)

    def take(n):
        nonlocal pos
        a = np.frombuffer(data, "<f4", n, pos).copy()
        pos += 4 * n
        return torch.from_numpy(a)
    mods = []
    for i, (kind, o) in enumerate(secs[1:cut + 2]):
        if i > cut:
            break
        if kind == "convolutional":
            n, size, stride = int(o["filters"]), int(o.get("size", 1)), int(o.get("stride", 1))
            pad = size // 2 if int(o.get("pad", 0)) else int(o.get("padding", 0))
            bn = int(o.get("batch_normalize", 0))
            conv = nn.Conv2d(c, n, size, stride, pad, bias=not bn)
            beta = take(n)
            if bn:
                gamma, mean, var = take(n), take(n), take(n)
            conv.weight.data.copy_(take(n * c * size * size).reshape(n, c, size, size))
            mods.append(conv)
            if bn:
                b = nn.BatchNorm2d(n, eps=0.0)
                b.weight.data.copy_(gamma)
                b.bias.data.copy_(beta)
                b.running_mean.copy_(mean)
                b.running_var.copy_((var.sqrt() + 1e-6) ** 2)
                mods.append(b)
            else:
                conv.bias.data.copy_(beta)
            act = o.get("activation", "logistic")
            if act == "leaky":
                mods.append(nn.LeakyReLU(0.1))
            elif act == "relu":
                mods.append(nn.ReLU())
            elif act != "linear":
                raise ValueError("activation %s not handled" % act)
            c = n
        elif kind == "maxpool":
            stride = int(o.get("stride", 1))
            size = int(o.get("size", stride))
            mods.append(DarknetPool(size, stride, int(o.get("padding", size - 1))))
        else:
            raise ValueError("layer %d: %s not handled by this peer" % (i, kind))
    return nn.Sequential(*mods)


def read_cifar(path, limit=0):
    """uint8 images [N, 3, 32, 32] (RGB) and int64 labels of a CIFAR-10 .bin or a directory."""
    if os.path.isdir(path):
        files = [os.path.join(path, "data_batch_%d.bin" % k) for k in range(1, 6)]
    else:
        files = [path]
    raw = np.concatenate([np.fromfile(f, np.uint8).reshape(-1, 3073) for f in files])
    if limit:
        raw = raw[:limit]
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))


CAFFE_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


def prep(x_u8, size, base):
    """uint8 NCHW RGB -> the network's float input at size x size."""
    x = x_u8.float()
    if base == "vgg16":
        x = x.flip(1) - CAFFE_MEAN_BGR          # caffe: BGR, minus means, 0..255
    else:
        x = x / 255.0                            # darknet: RGB in [0, 1]
    if size != x.shape[2]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


class Head(nn.Module):
    """Keras order: NHWC flatten, dense 1024 relu, dense N (softmax in the loss)."""

    def __init__(self, feat, classes, gen):
        super().__init__()
        self.d1, self.d2 = nn.Linear(feat, 1024), nn.Linear(1024, classes)
        for d in (self.d1, self.d2):
            fan_in, fan_out = d.weight.shape[1], d.weight.shape[0]
            lim = (6.0 / (fan_in + fan_out)) ** 0.5
            with torch.no_grad():
                d.weight.uniform_(-lim, lim, generator=gen)
                d.bias.zero_()

    def forward(self, f):                        # f: base output NCHW
        return self.d2(F.relu(self.d1(f.permute(0, 2, 3, 1).flatten(1))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="darknet", choices=["darknet", "vgg16"])
    ap.add_argument("--cfg"), ap.add_argument("--weights")
    ap.add_argument("--cut", type=int, default=18)
    ap.add_argument("--data", required=True), ap.add_argument("--test")
    ap.add_argument("--limit", type=int, default=0, help="use the first N training images")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--max-steps", type=int, default=0, help="stop each epoch after N batches (speed runs)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="usual", choices=["usual", "cached"])
    ap.add_argument("--budget", type=float, default=0,
                    help="seconds: stop after the epoch at which all epochs would exceed this")
    ap.add_argument("--dump-features", nargs=2, metavar=("N", "FILE"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    if a.base == "vgg16":
        import torchvision
        base = torchvision.models.vgg16().features   # random weights: speed only
    else:
        base = darknet_base(a.cfg, a.weights, a.cut)
    base.eval()
    for p in base.parameters():
        p.requires_grad_(False)

    x_tr, y_tr = read_cifar(a.data, a.limit)
    if a.dump_features:
        n = int(a.dump_features[0])
        with torch.no_grad():
            f = base(prep(x_tr[:n], a.size, a.base)).permute(0, 2, 3, 1).contiguous()
        np.save(a.dump_features[1], f.numpy().astype(np.float32))
        return
    with torch.no_grad():
        fshape = base(prep(x_tr[:1], a.size, a.base)).shape
    head = Head(fshape[1] * fshape[2] * fshape[3], 10, gen)
    opt = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0 / (1.0 + 1e-6 * it))
    n = x_tr.shape[0]

    feats = None
    t_start = time.time()
    if a.mode == "cached":
        t0 = time.time()
        with torch.no_grad():
            feats = torch.cat([base(prep(x_tr[s:s + 256], a.size, a.base)) for s in range(0, n, 256)])
        print("features_seconds %.2f" % (time.time() - t0))
    images = 0
    for ep in range(a.epochs):
        t0 = time.time()
        perm = torch.randperm(n, generator=gen)
        head.train()
        lsum, seen = 0.0, 0
        for s, k in enumerate(range(0, n, a.batch)):
            if a.max_steps and s >= a.max_steps:
                break
            idx = perm[k:k + a.batch]
            if feats is not None:
                f = feats[idx]
            else:
                with torch.no_grad():
                    f = base(prep(x_tr[idx], a.size, a.base))
            loss = F.cross_entropy(head(f), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            lsum += loss.item() * len(idx)
            seen += len(idx)
        images += seen
        print("epoch_seconds %.2f  # epoch %d loss %.4f" % (time.time() - t0, ep + 1, lsum / seen), flush=True)
        spent = time.time() - t_start
        if a.budget and ep + 1 < a.epochs and spent / (ep + 1) * a.epochs > a.budget:
            print("# budget: %d epochs would take ~%.0f s > %.0f s: stopped after %d (time extrapolates, "
                  "accuracy does not)" % (a.epochs, spent / (ep + 1) * a.epochs, a.budget, ep + 1), flush=True)
            break
    train_s = time.time() - t_start
    print("train_seconds %.2f" % train_s)
    print("images_per_second %.1f" % (images / train_s))
    if a.test:
        x_te, y_te = read_cifar(a.test)
        head.eval()
        correct, lsum = 0, 0.0
        with torch.no_grad():
            for s in range(0, x_te.shape[0], 256):
                logits = head(base(prep(x_te[s:s + 256], a.size, a.base)))
                lsum += F.cross_entropy(logits, y_te[s:s + 256], reduction="sum").item()
                correct += (logits.argmax(1) == y_te[s:s + 256]).sum().item()
        print("test_accuracy %.4f" % (correct / x_te.shape[0]))
        print("test_loss %.4f" % (lsum / x_te.shape[0]))


if __name__ == "__main__":
    sys.exit(main())
