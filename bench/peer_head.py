#!/usr/bin/python3
"""peer_head.py — PyTorch peer of `graft train`'s head on graft-extracted features
(bench/bench_converge.sh).

The features are NOT computed here: they are the frozen base's output written by
`graft extract` (a float32 .npy, NHWC [N, H, W, C]) or graft's own features-cache
file ($GRAFT_HOME/cache/features, the rows `graft train` trains on); the base forward itself is
checked against an independent PyTorch darknet in tests/test_darknet.c.  This
script only trains the head, the Keras seed recipe written the PyTorch way
(no code shared with graft):
  head   flatten (NHWC order, as Keras) -> Linear(F, 1024) + ReLU -> Linear(1024, 10)
         (softmax inside the loss); Glorot-uniform kernels, zero biases (Keras' init).
  optim  torch.optim.SGD(lr 0.01, momentum 0.9, nesterov=True) with a LambdaLR
         stepped every batch: lr / (1 + 1e-6 * iterations) (Keras' `decay`).
  loop   batch 32, a fresh torch.randperm shuffle every epoch, cross-entropy,
         torch.set_num_threads(--threads, default 2).
  --standardize  feed the head (x - mean) / std with per-feature mean and std of
         the TRAINING features (std 0 -> 1), what graft does by default.
  --schedule cosine  instead of Keras' decay, CosineAnnealingLR(T_max = all batches)
         stepped every batch: lr * (1 + cos(pi * it / total)) / 2, graft's default.
Labels come from the CIFAR-10 .bin records in file order (data_batch_1..5, or
test_batch), the order `graft extract` writes.

Prints `key value` lines: one `epoch E loss L train_acc A test_acc T seconds S`
per epoch, then test_accuracy (final), best_test_accuracy, best_epoch,
train_seconds.
"""
import argparse, os, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def cifar_labels(path, split):
    """int64 labels of a CIFAR-10 directory's train/test split, or of one .bin file."""
    if os.path.isdir(path):
        names = ["data_batch_%d.bin" % k for k in range(1, 6)] if split == "train" else ["test_batch.bin"]
        files = [os.path.join(path, n) for n in names]
    else:
        files = [path]
    raw = np.concatenate([np.fromfile(f, np.uint8).reshape(-1, 3073) for f in files])
    return torch.from_numpy(raw[:, 0].astype(np.int64))


def load_features(path):
    """[N, F] float32 from a graft extract .npy (N,H,W,C, flattened in NHWC order) or from a
    graft features-cache file ("GRFC", u32 version, u64 n, u64 F, n*F float32: the same NHWC
    rows graft trains on, in sample order)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GRFC":
        hdr = np.fromfile(path, np.uint64, count=3, offset=0)   # magic+version, n, F
        n, feat = int(hdr[1]), int(hdr[2])
        x = np.fromfile(path, np.float32, offset=24)
        if x.size != n * feat:
            sys.exit("peer_head: %s: %d floats, header says %d x %d" % (path, x.size, n, feat))
        return torch.from_numpy(x.reshape(n, feat))
    return torch.from_numpy(np.load(path).astype(np.float32, copy=False)).flatten(1)


def glorot_(lin, gen):
    fan_out, fan_in = lin.weight.shape
    lim = (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        lin.weight.uniform_(-lim, lim, generator=gen)
        lin.bias.zero_()


def evaluate(d1, d2, x, y):
    correct = 0
    with torch.no_grad():
        for s in range(0, x.shape[0], 1000):
            logits = d2(F.relu(d1(x[s:s + 1000])))
            correct += (logits.argmax(1) == y[s:s + 1000]).sum().item()
    return correct / x.shape[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True, help="train features: .npy (N,H,W,C) from graft extract, or a "
                    "graft features-cache file")
    ap.add_argument("--test", required=True, help="test features .npy")
    ap.add_argument("--train-labels", required=True, help="CIFAR-10 directory (data_batch_1..5) or one .bin")
    ap.add_argument("--test-labels", required=True, help="CIFAR-10 directory (test_batch) or one .bin")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--standardize", action="store_true")
    ap.add_argument("--schedule", choices=["keras", "cosine"], default="keras")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    x_tr, x_te = load_features(a.train), load_features(a.test)
    y_tr, y_te = cifar_labels(a.train_labels, "train"), cifar_labels(a.test_labels, "test")
    if x_tr.shape[0] != y_tr.shape[0] or x_te.shape[0] != y_te.shape[0]:
        sys.exit("peer_head: %d/%d train, %d/%d test features/labels" %
                 (x_tr.shape[0], y_tr.shape[0], x_te.shape[0], y_te.shape[0]))
    if a.standardize:
        mean = x_tr.double().mean(0)
        std = x_tr.double().std(0, unbiased=False)
        std[std == 0] = 1.0
        x_tr = ((x_tr - mean.float()) / std.float()).contiguous()
        x_te = ((x_te - mean.float()) / std.float()).contiguous()
    n, feat = x_tr.shape
    print("features %d x %d (train), %d (test), standardize %d, schedule %s" % (n, feat, x_te.shape[0],
                                                                             int(a.standardize), a.schedule))

    d1, d2 = nn.Linear(feat, 1024), nn.Linear(1024, 10)
    glorot_(d1, gen)
    glorot_(d2, gen)
    params = list(d1.parameters()) + list(d2.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)
    if a.schedule == "cosine":
        total = a.epochs * ((n + 31) // 32)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=0.0)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0 / (1.0 + 1e-6 * it))
    t_start = time.time()
    best, best_ep, acc = -1.0, 0, 0.0
    for ep in range(a.epochs):
        t0 = time.time()
        perm = torch.randperm(n, generator=gen)
        lsum, correct = 0.0, 0
        for k in range(0, n, 32):
            idx = perm[k:k + 32]
            logits = d2(F.relu(d1(x_tr[idx])))
            loss = F.cross_entropy(logits, y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            lsum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y_tr[idx]).sum().item()
        sec = time.time() - t0
        acc = evaluate(d1, d2, x_te, y_te)
        if acc > best:
            best, best_ep = acc, ep + 1
        print("epoch %d loss %.4f train_acc %.4f test_acc %.4f seconds %.1f" %
              (ep + 1, lsum / n, correct / n, acc, sec), flush=True)
    print("test_accuracy %.4f" % acc)
    print("best_test_accuracy %.4f" % best)
    print("best_epoch %d" % best_ep)
    print("train_seconds %.1f" % (time.time() - t_start))


if __name__ == "__main__":
    sys.exit(main())
