#!/usr/bin/env bash
# Writes the seed corpora of the fuzz targets into $FB/seeds/<target>/ from
# the test fixtures, small generated files, and files only graft can make
# ($FB/make_seeds).  Real files from ../shared/data are used when present.
# Run by `make fuzz` (once); safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
FB=${FB:-build-fuzz}
S=$FB/seeds
DATA=${GRAFT_DATA:-$(cd .. && pwd)/shared/data}
PY=/usr/bin/python3
rm -rf "$S"; mkdir -p "$S"
for t in safetensors darknet_cfg darknet_weights tflite onnx model_file checkpoint cifar cifar_targz image csv fetch; do
  mkdir -p "$S/$t"
done

"$FB/make_seeds" "$S" "$PWD"
rm -rf "$S/tmp"
cp "$S"/model_file/*.gft "$S/safetensors/"

# darknet
cp tests/fixtures/darknet/synth.cfg tests/fixtures/cli/tiny.cfg "$S/darknet_cfg/"
[ -f "$DATA/weights/darknet-tiny/tiny.cfg" ] && cp "$DATA/weights/darknet-tiny/tiny.cfg" "$S/darknet_cfg/real_tiny.cfg"
for c in /usr/share/darknet/cfg/darknet.cfg; do
  [ -f "$c" ] && cp "$c" "$S/darknet_cfg/"
done
cp tests/fixtures/darknet/synth.weights "$S/darknet_weights/"
head -c 2000 tests/fixtures/darknet/synth.weights >"$S/darknet_weights/short.weights"

# images: every fixture image
cp tests/fixtures/data/*.png tests/fixtures/data/*.jpg tests/fixtures/data/*.bmp "$S/image/"

# TFLite: two small generated models (float; uint8 per-channel) — the real
# ones (0.5-4 MB) are too big for libFuzzer to mutate well
$PY fuzz/gen_tflite_seed.py "$S/tflite"

# ONNX: the small PyTorch-exported fixtures (mobilenet_v2's 1 MB is too big to mutate well)
cp tests/fixtures/norm/custom.onnx tests/fixtures/norm/unnamed.onnx tests/fixtures/norm/bad_std.onnx "$S/onnx/"
cp tests/fixtures/norm/old_caffe.gft "$S/model_file/"
cp tests/fixtures/onnx/small.onnx tests/fixtures/onnx/small_bn.onnx tests/fixtures/onnx/flat.onnx \
   tests/fixtures/onnx/flat_nhwc.onnx tests/fixtures/onnx/flat_fp16.onnx tests/fixtures/onnx/small_typed.onnx "$S/onnx/"
# a small ViT (class token, position embedding, the attention pattern; torch 2 dynamo form too) and a malformed one
cp tests/fixtures/onnx/vit_dyn.onnx tests/fixtures/onnx/bad_vit_heads.onnx tests/fixtures/onnx/vit_t2d.onnx "$S/onnx/"

# CIFAR batches and archives, CSV lists
$PY - "$S" <<'PY'
import io, os, sys, tarfile
S = sys.argv[1]
def recs(n, c100=False):
    out = bytearray()
    for i in range(n):
        out += bytes([i % 20, i % 100]) if c100 else bytes([i % 10])
        out += bytes((i * 7 + k) % 256 for k in range(3072))
    return bytes(out)
open(f"{S}/cifar/c10_3.bin", "wb").write(recs(3))
open(f"{S}/cifar/c100_2.bin", "wb").write(recs(2, True))
open(f"{S}/cifar/c10_1.bin", "wb").write(recs(1))
def tgz(name, files):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w:gz") as t:
        for n, b in files:
            ti = tarfile.TarInfo(n); ti.size = len(b)
            t.addfile(ti, io.BytesIO(b))
    open(f"{S}/cifar_targz/{name}", "wb").write(bio.getvalue())
names10 = b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n"
tgz("c10.tar.gz", [("cifar-10-batches-bin/batches.meta.txt", names10)] +
    [(f"cifar-10-batches-bin/data_batch_{k}.bin", recs(1)) for k in range(1, 6)] +
    [("cifar-10-batches-bin/test_batch.bin", recs(2))])
tgz("c100.tar.gz", [("cifar-100-binary/fine_label_names.txt", b"".join(b"f%d\n" % i for i in range(100))),
                    ("cifar-100-binary/coarse_label_names.txt", b"".join(b"c%d\n" % i for i in range(20))),
                    ("cifar-100-binary/train.bin", recs(2, True)), ("cifar-100-binary/test.bin", recs(1, True))])
csv = {"names.csv": "path,label\na.png,cat\nb.bmp,dog\na.png,dog\n",
       "ints.csv": "a.png,0\nb.bmp,2\n\nb.bmp,1\n",
       "header_file.csv": "file,class\r\nb.bmp,x\r\na.png,y\r\n",
       "missing.csv": "image,label\nnope.png,1\na.png,0\n",
       "spaces.csv": " a.png , bird \n b.bmp,fish\n"}
for n, t in csv.items():
    open(f"{S}/csv/{n}", "w").write(t)
PY
# fetch: flags, two int64, then NUL-separated headers, body, digest, SHA256SUMS
$PY - "$S" <<'PY'
import hashlib, struct, sys
S = sys.argv[1]
def seed(name, flags, total, now, headers, body, digest, sums):
    b = bytes([flags]) + struct.pack('<qq', total, now)
    b += b'\0'.join([headers, body, digest, sums])
    open(f"{S}/fetch/{name}", "wb").write(b)
body = b'abcdefghij'
full = b'0123456789' + body
sums = (hashlib.sha256(b'x').hexdigest() + '  ./weights/darknet-tiny/tiny.cfg\n' +
        hashlib.sha256(b'y').hexdigest() + ' *other\n').encode()
seed('resume_ok', 1, 10, 10, b'HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 10-19/20\r\n\r\n', body,
     hashlib.sha256(full).hexdigest().encode(), sums)
seed('redirect', 3, 20, 5, b'HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n',
     full, hashlib.md5(full).hexdigest().encode(), b'')
seed('wrong_range', 1, 0, 0, b'HTTP/1.1 206 Partial Content\r\ncontent-range:\tbytes 3-12/20\r\n', body, b'zz', sums)
seed('plain', 0, -1, 1 << 40, b'', full, b'', b'garbage\n\n')
PY
n=$(find "$S" -type f | wc -l)
echo "seeds: $n files in $S"
