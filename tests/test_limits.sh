#!/usr/bin/env bash
# Limits before allocation, through the CLI under a low `ulimit -v` (issue 15):
# absurd sizes in files are refused with "graft: error: ..." naming the file,
# never an out-of-memory kill.  The release build runs under ulimit -v; the
# ASan build (which needs terabytes of address space) under the same bound
# set as ASan's max_allocation_size_mb.
#   - a cfg whose parameters need 15 GB (the allocation fails: a clean error;
#     with GRAFT_MAX_MEMORY=64 it is refused before allocating)
#   - a model file declaring a 100000x100000 input (predict)
#   - a 1 KB PNG declaring 50000x50000 (predict)
#   - a .tar.gz whose entry declares 64 GiB (eval)
#   - a 1 KB BMP declaring 50000x50000 (predict)
#   - a cfg [connected] of 10^9 outputs (info)
#   - safetensors: a 100000x100000 tensor in 16 bytes, data_offsets 10 GB past the end (info)
#   - a TFLite and an ONNX model declaring a 100000x100000 input (info --base)
set -u
. "$(dirname "$0")/lib.sh"
# ASan reserves terabytes of address space, so a ulimit -v cannot apply to it:
# under ASan the same 1.5 GB bound is ASan's own (an allocation past it fails,
# and a process whose resident memory grows past it is killed: a test failure)
ASAN_BUILD=0
if ldd "$G" 2>/dev/null | grep -q libasan; then ASAN_BUILD=1; fi
if ! [ -x "$PY" ]; then echo "SKIP test_limits.sh: no /usr/bin/python3"; exit 0; fi
LIMIT_KB=1500000   # 1.5 GB of address space: the 15 GB / 100000^2 cases cannot fit

"$PY" - "$T" <<'PY'
import gzip, json, struct, sys, tarfile, zlib
T = sys.argv[1]
def gft(path, arch):  # a graft model file: safetensors with only the metadata
    meta = {"__metadata__": {"graft.format": "graft-model-1", "graft.architecture": json.dumps(arch)}}
    h = json.dumps(meta).encode(); h += b' ' * ((8 - len(h) % 8) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h)
gft(f'{T}/huge_in.gft', {"input": [100000, 100000, 3], "layers": [{"name": "gap", "op": "global_average_pooling2d"}]})
gft(f'{T}/tiny.gft', {"input": [8, 8, 3], "layers": [{"name": "gap", "op": "global_average_pooling2d"}],
                      "classes": ["r", "g", "b"], "preprocess": "none"})
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
png = (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 50000, 50000, 8, 2, 0, 0, 0)) +
       chunk(b'IDAT', zlib.compress(b'\0' * 65536, 9)) + chunk(b'IEND', b''))
assert len(png) <= 1024
open(f'{T}/bomb.png', 'wb').write(png)
ti = tarfile.TarInfo('cifar-10-batches-bin/test_batch.bin'); ti.size = 64 << 30
raw = ti.tobuf(format=tarfile.GNU_FORMAT) + b'\0' * 65536
open(f'{T}/bomb.tar.gz', 'wb').write(gzip.compress(raw))
bmp = (b'BM' + struct.pack('<IHHI', 1024, 0, 0, 54) +
       struct.pack('<IiiHHIIiiII', 40, 50000, 50000, 1, 24, 0, 0, 2835, 2835, 0, 0))
open(f'{T}/bomb.bmp', 'wb').write(bmp + b'\0' * (1024 - len(bmp)))
def st(path, tensors, data):  # a safetensors file
    h = json.dumps(tensors).encode(); h += b' ' * ((8 - len(h) % 8) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
st(f'{T}/huge.safetensors', {"a": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 16]}}, b'\0' * 16)
st(f'{T}/past_end.safetensors', {"a": {"dtype": "F32", "shape": [50000, 50000], "data_offsets": [0, 10 ** 10]}},
   b'\0' * 16)
sys.path.insert(0, 'fuzz')
import gen_tflite_seed as tfl   # its 6x6 CNN with a 100000x100000 input
small_tensor = tfl.tensor
tfl.tensor = lambda shape, *a: small_tensor([1, 100000, 100000, 3] if a[2] == 'input' else shape, *a)
open(f'{T}/huge_in.tflite', 'wb').write(tfl.float_cnn())
try:
    import onnx
    m = onnx.load('tests/fixtures/onnx/small.onnx')
    for d in m.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_value = 100000
    onnx.save(m, f'{T}/huge_in.onnx')
except ImportError:
    pass
PY
printf '[net]\nheight=8\nwidth=8\nchannels=3\n\n[connected]\noutput=1000000000\nactivation=linear\n' >"$T/huge_fc.cfg"
# two 3x3 convs of 29 filters at 3000x3000: each output 3000*3000*29*4 = 1044000000 bytes
# (995.6 MiB, under the per-layer limit): the second cannot fit in 1.5 GB
c29='[convolutional]\nfilters=29\nsize=3\nstride=1\npad=1\nactivation=leaky\n'
printf "[net]\nheight=8\nwidth=8\nchannels=3\n\n$c29\n$c29" >"$T/wide.cfg"
printf '[net]\nheight=8\nwidth=8\nchannels=4096\n\n[convolutional]\nfilters=100000\nsize=3\nstride=1\npad=1\nactivation=leaky\n' >"$T/huge.cfg"

# expect NAME WANT_REGEX [ENV=VAL] -- graft args...: exit 1 or 2, the error names the file
expect() {
  local name=$1 want=$2; shift 2
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  if [ $ASAN_BUILD = 1 ]; then
    env "${envs[@]}" ASAN_OPTIONS="${ASAN_OPTIONS:-}:allocator_may_return_null=1:max_allocation_size_mb=$((LIMIT_KB / 1024)):hard_rss_limit_mb=$((LIMIT_KB / 1024))" \
        "$G" "$@" >"$T/out" 2>"$T/err"
  else
    ( ulimit -v $LIMIT_KB; env "${envs[@]}" "$G" "$@" ) >"$T/out" 2>"$T/err"
  fi
  local rc=$?
  if [ $rc -ge 1 ] && [ $rc -le 2 ] && grep -Eq "^graft: error: .*$want" "$T/err"; then
    echo "PASS $name"
  else
    echo "FAIL $name: exit $rc (want 1 or 2 and an error matching '$want')"; sed 's/^/    /' "$T/err" | tail -5
  fi
}
expect limits_cfg_15gb "huge.cfg.*(out of memory|memory budget)" GRAFT_X=1 -- info --base "darknet:$T/huge.cfg"
if [ $ASAN_BUILD = 0 ]; then  # (under ASan each buffer fits its per-allocation bound)
  expect limits_activations "wide.cfg.*out of memory allocating the network's activations: 995\.6 MiB \(1044000000 bytes\): use a smaller --batch or --input-size" \
    GRAFT_X=1 -- predict --base "darknet:$T/wide.cfg" --weights none --input-size 3000x3000 tests/fixtures/data/rgb8.png
fi
expect limits_cfg_budget "huge.cfg.*memory budget" GRAFT_MAX_MEMORY=64 -- info --base "darknet:$T/huge.cfg"
expect limits_model_input "huge_in.gft.*100000x100000" GRAFT_X=1 -- predict --model "$T/huge_in.gft" "$T/bomb.png"
expect limits_png_bomb "bomb.png.*50000x50000" GRAFT_X=1 -- predict --model "$T/tiny.gft" "$T/bomb.png"
expect limits_targz_bomb "bomb.tar.gz.*memory budget" GRAFT_X=1 -- eval --model "$T/tiny.gft" --data "$T/bomb.tar.gz" --format cifar10
expect limits_bmp_bomb "bomb.bmp.*50000x50000" GRAFT_X=1 -- predict --model "$T/tiny.gft" "$T/bomb.bmp"
expect limits_cfg_connected "huge_fc.cfg.*1000000000" GRAFT_X=1 -- info --base "darknet:$T/huge_fc.cfg"
expect limits_st_shape "huge.safetensors.*'a'.*40000000000" GRAFT_X=1 -- info "$T/huge.safetensors"
expect limits_st_offsets "past_end.safetensors.*'a'.*past the end" GRAFT_X=1 -- info "$T/past_end.safetensors"
expect limits_tflite_input "huge_in.tflite.*100000x100000" GRAFT_X=1 -- info --base "tflite:$T/huge_in.tflite"
if [ -f "$T/huge_in.onnx" ]; then
  expect limits_onnx_input "huge_in.onnx.*100000x100000" GRAFT_X=1 -- info --base "onnx:$T/huge_in.onnx"
else
  echo "SKIP limits_onnx_input: /usr/bin/python3 has no onnx module (scripts/deps.sh test: python3-onnx)"
fi
