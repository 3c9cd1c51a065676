#!/usr/bin/python3
"""Image folders for bench/bench_budget.sh (and by hand), as PNG files:

  make_budget_data.py fashion DIR TRAIN_PER_CLASS TEST_PER_CLASS [CLASSES]
      Fashion-MNIST from Debian's dataset-fashion-mnist
      (/usr/share/datasets/fashion-mnist): 28x28 grayscale, 10 classes
      (or the first CLASSES), DIR/train/<class>/*.png and DIR/test/<class>/*.png
  make_budget_data.py cifar DIR TRAIN_PER_CLASS TEST_PER_CLASS [CLASSES] [SIZE]
      CIFAR-10 binary batches (../shared/data/cifar-10-batches-bin or
      $CIFAR_DIR): 32x32 RGB (resized to SIZE when given), the first CLASSES
      classes.

The first N images of each class in file order: deterministic."""
import gzip
import os
import sys

import numpy as np
from PIL import Image

FASHION = "/usr/share/datasets/fashion-mnist"
FASHION_NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def idx_read(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def write(dirname, images, labels, names, per_class, classes, size=None):
    count = [0] * classes
    for img, lab in zip(images, labels):
        lab = int(lab)
        if lab >= classes or count[lab] >= per_class:
            continue
        d = os.path.join(dirname, names[lab])
        os.makedirs(d, exist_ok=True)
        im = Image.fromarray(img)
        if size:
            im = im.resize((size, size), Image.BILINEAR)
        im.save(os.path.join(d, "%05d.png" % count[lab]))
        count[lab] += 1
        if all(c >= per_class for c in count):
            break
    return sum(count)


def cifar(split):
    root = os.environ.get("CIFAR_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                    "cifar-10-batches-bin"))
    files = ["test_batch.bin"] if split == "test" else ["data_batch_%d.bin" % i for i in range(1, 6)]
    recs = np.concatenate([np.fromfile(os.path.join(root, f), np.uint8).reshape(-1, 3073) for f in files])
    labels = recs[:, 0]
    imgs = recs[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    with open(os.path.join(root, "batches.meta.txt")) as f:
        names = [l.strip() for l in f if l.strip()]
    return imgs, labels, names


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    kind, out, ntr, nte = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    classes = int(sys.argv[5]) if len(sys.argv) > 5 else 10
    size = int(sys.argv[6]) if len(sys.argv) > 6 else None
    if kind == "fashion":
        tr = (idx_read(FASHION + "/train-images-idx3-ubyte.gz"), idx_read(FASHION + "/train-labels-idx1-ubyte.gz"))
        te = (idx_read(FASHION + "/t10k-images-idx3-ubyte.gz"), idx_read(FASHION + "/t10k-labels-idx1-ubyte.gz"))
        names = FASHION_NAMES
    elif kind == "cifar":
        a, b, names = cifar("train")
        tr = (a, b)
        a, b, _ = cifar("test")
        te = (a, b)
    else:
        sys.exit("unknown kind %r (fashion or cifar)" % kind)
    n1 = write(os.path.join(out, "train"), tr[0], tr[1], names, ntr, classes, size)
    n2 = write(os.path.join(out, "test"), te[0], te[1], names, nte, classes, size)
    print("%s: %d train, %d test images, %d classes" % (out, n1, n2, classes))


if __name__ == "__main__":
    main()
