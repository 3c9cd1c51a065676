#!/usr/bin/python3
"""gen_tflite_seed.py — small TFLite flatbuffers for the tflite fuzz target's
seed corpus (the real models are 0.5-4 MB; libFuzzer mutates small inputs
far better).  A minimal flatbuffer writer (tables with their vtable just
before them, children after their parents) and TFLite's schema field
numbers; no flatbuffers package needed.

  gen_tflite_seed.py OUTDIR

Writes OUTDIR/float_cnn.tflite: input [1,6,6,3] -> CONV_2D 3x3 (4, SAME,
RELU) -> MAX_POOL_2D 2x2 -> MEAN over H,W -> FULLY_CONNECTED (2) -> SOFTMAX,
and OUTDIR/quant_dw.tflite: uint8 input -> DEQUANTIZE -> DEPTHWISE_CONV_2D
with per-channel uint8 weights -> AVERAGE_POOL_2D -> RESHAPE -> ADD."""
import struct
import sys


class Table:
    def __init__(self, *fields):
        self.fields = fields      # None | ('b', v) | ('i', v) | ('f', v) | node


class Vec:
    def __init__(self, kind, items):
        self.kind, self.items = kind, items   # 'i32', 'f32', 'i64', 'u8' (bytes), 'ref'


class Str:
    def __init__(self, s):
        self.s = s.encode()


def serialize(root, ident=b'TFL3'):
    buf = bytearray(struct.pack('<I', 0) + ident)
    queue = [(0, root)]                       # (position of the uoffset to patch, node)
    while queue:
        at, node = queue.pop(0)
        while len(buf) % 8:
            buf.append(0)
        if isinstance(node, Table):
            nf = len(node.fields)
            vt = 4 + 2 * nf
            if vt % 4:
                vt += 2
            vt_pos = len(buf)
            tpos = vt_pos + vt
            offs, body, kids = [], bytearray(), []
            for f in node.fields:
                if f is None:
                    offs.append(0)
                    continue
                offs.append(4 + len(body))
                if isinstance(f, tuple):
                    body += struct.pack({'b': '<i', 'i': '<i', 'f': '<f'}[f[0]], f[1])
                else:
                    kids.append((tpos + 4 + len(body), f))
                    body += b'\0\0\0\0'
            v = struct.pack('<HH', 4 + 2 * nf, 4 + len(body)) + b''.join(struct.pack('<H', o) for o in offs)
            buf += v + b'\0' * (vt - len(v))
            buf += struct.pack('<i', tpos - vt_pos) + body
            pos = tpos
            queue += kids
        elif isinstance(node, Str):
            pos = len(buf)
            buf += struct.pack('<I', len(node.s)) + node.s + b'\0'
        else:
            if node.kind == 'i64' and len(buf) % 8 != 4:
                buf += b'\0\0\0\0'
            pos = len(buf)
            n = len(node.items)
            buf += struct.pack('<I', n)
            if node.kind == 'u8':
                buf += bytes(node.items)
            elif node.kind == 'ref':
                base = len(buf)
                buf += b'\0' * 4 * n
                queue += [(base + 4 * k, c) for k, c in enumerate(node.items)]
            else:
                buf += b''.join(struct.pack({'i32': '<i', 'f32': '<f', 'i64': '<q'}[node.kind], x)
                                for x in node.items)
        struct.pack_into('<I', buf, at, pos - at)
    return bytes(buf)


F32, I32, U8 = 0, 2, 3


def tensor(shape, ttype, buf, name, quant=None):
    return Table(Vec('i32', shape), ('b', ttype), ('i', buf), Str(name), quant)


def fbytes(vals):
    return Vec('u8', list(b''.join(struct.pack('<f', v) for v in vals)))


def op(idx, ins, outs, opt_type=0, opt=None):
    return Table(('i', idx), Vec('i32', ins), Vec('i32', outs), ('b', opt_type) if opt_type else None, opt)


def model(codes, tensors, inputs, outputs, ops, buffers):
    sg = Table(Vec('ref', tensors), Vec('i32', inputs), Vec('i32', outputs), Vec('ref', ops), Str('main'))
    opcodes = Vec('ref', [Table(('b', min(c, 127)), None, ('i', 1), ('i', c)) for c in codes])
    return serialize(Table(('i', 3), opcodes, Vec('ref', [sg]), Str('graft fuzz seed'),
                           Vec('ref', [Table(b) for b in buffers])))


def float_cnn():
    w = [((i * 7) % 11 - 5) / 10 for i in range(4 * 3 * 3 * 3)]
    fw = [((i * 5) % 7 - 3) / 5 for i in range(2 * 4)]
    buffers = [None, fbytes(w), fbytes([0.1, -0.1, 0.2, 0]), Vec('u8', list(struct.pack('<ii', 1, 2))),
               fbytes(fw), fbytes([0.5, -0.5])]
    tensors = [tensor([1, 6, 6, 3], F32, 0, 'input'), tensor([4, 3, 3, 3], F32, 1, 'conv/w'),
               tensor([4], F32, 2, 'conv/b'), tensor([1, 6, 6, 4], F32, 0, 'conv'),
               tensor([1, 3, 3, 4], F32, 0, 'pool'), tensor([2], I32, 3, 'axes'),
               tensor([1, 4], F32, 0, 'mean'), tensor([2, 4], F32, 4, 'fc/w'), tensor([2], F32, 5, 'fc/b'),
               tensor([1, 2], F32, 0, 'fc'), tensor([1, 2], F32, 0, 'probs')]
    codes = [3, 17, 40, 9, 25]   # CONV_2D, MAX_POOL_2D, MEAN, FULLY_CONNECTED, SOFTMAX
    ops = [op(0, [0, 1, 2], [3], 1, Table(('b', 0), ('i', 1), ('i', 1), ('b', 1), ('i', 1), ('i', 1))),
           op(1, [3], [4], 5, Table(('b', 1), ('i', 2), ('i', 2), ('i', 2), ('i', 2), ('b', 0))),
           op(2, [4, 5], [6], 27, Table(('b', 0))),
           op(3, [6, 7, 8], [9], 8, Table(('b', 0), ('b', 0), ('b', 0))),
           op(4, [9], [10], 9, Table(('f', 1.0)))]
    return model(codes, tensors, [0], [10], ops, buffers)


def quant_dw():
    q = lambda scales, zps, dim=0: Table(None, None, Vec('f32', scales), Vec('i64', zps), None, None, ('i', dim))
    buffers = [None, Vec('u8', [(i * 37) % 256 for i in range(3 * 3 * 3)]), fbytes([0, 0.5, -0.5]),
               Vec('u8', list(struct.pack('<ii', 1, 12)))]
    tensors = [tensor([1, 4, 4, 3], U8, 0, 'input_q', q([1 / 128], [128])),
               tensor([1, 4, 4, 3], F32, 0, 'input'),
               tensor([1, 3, 3, 3], U8, 1, 'dw/w', q([0.01, 0.02, 0.03], [128, 127, 126], 3)),
               tensor([3], F32, 2, 'dw/b'), tensor([1, 2, 2, 3], F32, 0, 'dw'),
               tensor([1, 1, 1, 3], F32, 0, 'avg'), tensor([2], I32, 3, 'shape'),
               tensor([1, 3], F32, 0, 'flat'), tensor([1, 3], F32, 0, 'sum')]
    codes = [6, 4, 1, 22, 0]   # DEQUANTIZE, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, RESHAPE, ADD
    ops = [op(0, [0], [1]),
           op(1, [1, 2, 3], [4], 2, Table(('b', 1), ('i', 1), ('i', 1), ('i', 1), ('b', 3), ('i', 1), ('i', 1))),
           op(2, [4], [5], 5, Table(('b', 1), ('i', 2), ('i', 2), ('i', 2), ('i', 2), ('b', 0))),
           op(3, [5, 6], [7]),
           op(4, [7, 7], [8], 11, Table(('b', 1)))]
    return model(codes, tensors, [0], [8], ops, buffers)


if __name__ == '__main__':   # (tests/test_limits.sh imports it to make oversized models)
    out = sys.argv[1]
    open(f'{out}/float_cnn.tflite', 'wb').write(float_cnn())
    open(f'{out}/quant_dw.tflite', 'wb').write(quant_dw())
