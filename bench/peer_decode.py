#!/usr/bin/python3
"""peer_decode.py — the same cases as bench_decode.c with PIL / torchvision
(one thread): prints "<case> <images/s>".  Usage: peer_decode.py <jpeg>... -- <cifar.bin> <seconds>"""
import sys, time
import numpy as np
from PIL import Image
import torch, torchvision
from torchvision.transforms import functional as F

torch.set_num_threads(1)
args = sys.argv[1:]
k = args.index("--")
jpegs, binf, secs = args[:k], args[k + 1], float(args[k + 2])
MEAN = np.array([103.939, 116.779, 123.68], np.float32)


def caffe(a):            # a: HWC RGB float32 0..255
    return a[..., ::-1] - MEAN


def rate(fn):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < secs:
        fn(n); n += 1
    return n / (time.perf_counter() - t0)


def pil_jpeg(i):
    im = Image.open(jpegs[i % len(jpegs)]).convert("RGB").resize((224, 224), Image.BILINEAR)
    caffe(np.asarray(im, np.float32))


print("jpeg_decode_resize224_PIL %.1f" % rate(pil_jpeg))
try:
    datas = [torchvision.io.read_file(p) for p in jpegs]

    def tv_jpeg(i):
        t = torchvision.io.decode_jpeg(torchvision.io.read_file(jpegs[i % len(jpegs)]))
        F.resize(t.float(), [224, 224], antialias=True)
    tv_jpeg(0)
    print("jpeg_decode_resize224_torchvision %.1f" % rate(tv_jpeg))
except Exception as e:  # torchvision built without image codecs
    print("# torchvision decode_jpeg unavailable: %s" % e)

raw = np.fromfile(binf, np.uint8).reshape(-1, 3073)
imgs = raw[:, 1:].reshape(-1, 3, 32, 32)


def pil_cifar(i):        # torchvision.datasets.CIFAR10.__getitem__ + a caffe transform
    im = Image.fromarray(imgs[i % len(imgs)].transpose(1, 2, 0))
    caffe(np.asarray(im, np.float32))


print("cifar_record32_PIL %.1f" % rate(pil_cifar))


def pil_cifar224(i):     # RandomCrop(32, 4) + flip + Resize(224) per record
    im = Image.fromarray(imgs[i % len(imgs)].transpose(1, 2, 0))
    im = F.hflip(F.crop(F.pad(im, 4), 2, 3, 32, 32)).resize((224, 224), Image.BILINEAR)
    caffe(np.asarray(im, np.float32))


print("cifar_batcher224_PIL %.1f" % rate(pil_cifar224))
