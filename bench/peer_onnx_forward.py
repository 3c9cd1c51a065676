"""peer_onnx_forward.py — bench/onnx_forward.sh's two halves.

  /usr/bin/python3 bench/peer_onnx_forward.py export DIR NAME...
      torchvision's NAME (random seeded weights, 1000 classes, eval mode) ->
      DIR/NAME.onnx by torch.onnx.export at opset 13, input [N,3,224,224]
      with a symbolic batch (Debian's PyTorch, the exporter graft's
      fixtures use); an existing file is kept.
  PEERS_PYTHON bench/peer_onnx_forward.py run DIR GRAFT_BIN THREADS SECONDS ROUNDS NAME...
      for each model, batch 1 (latency) and batch 32 (throughput), 224x224:
      graft (GRAFT_BIN, driven through a pipe), ONNX Runtime (every graph
      optimization) and OpenVINO (CPU, LATENCY hint), THREADS threads each,
      taking turns: ROUNDS rounds each of >= SECONDS, after a warm-up round.
      Prints the versions, then one line per model and batch with the load
      average, and graft's speed over the best peer's.
"""
import os
import subprocess
import sys
import time


def export(d, names):
    import torch
    import torchvision
    os.makedirs(d, exist_ok=True)
    for name in names:
        path = os.path.join(d, name + ".onnx")
        if os.path.exists(path):
            print("have", path)
            continue
        torch.manual_seed(0)
        m = getattr(torchvision.models, name)().eval()
        x = torch.randn(1, 3, 224, 224)
        torch.onnx.export(m, x, path + ".tmp", input_names=["input"], output_names=["logits"], opset_version=13,
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        os.replace(path + ".tmp", path)
        print("exported", path, os.path.getsize(path) >> 20, "MB")


def load():
    return open("/proc/loadavg").read().split()[0]


class Graft:
    name = "graft"

    def __init__(self, binary, path, threads):
        env = dict(os.environ, GRAFT_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   OMP_WAIT_POLICY="passive")   # no spinning pool stealing the peers' turn
        self.p = subprocess.Popen([binary, path, "224"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=env)
        first = self.p.stdout.readline().strip()
        if not first.startswith("ready"):
            self.p.wait()
            raise RuntimeError(first or "no answer")

    def round(self, b, secs):
        self.p.stdin.write("run %d %g\n" % (b, secs))
        self.p.stdin.flush()
        r = self.p.stdout.readline().strip()
        if not r.startswith("ok"):
            raise RuntimeError(r)
        kv = dict(f.split("=") for f in r.split()[1:])
        return int(kv["iters"]), float(kv["secs"]), float(kv["med_ms"])

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def timed(run, secs):
    ts, t0 = [], time.perf_counter()
    while True:
        a = time.perf_counter()
        run()
        ts.append(time.perf_counter() - a)
        if time.perf_counter() - t0 >= secs:
            break
    ts.sort()
    return len(ts), time.perf_counter() - t0, 1e3 * ts[len(ts) // 2]


class Ort:
    name = "onnxruntime"

    def __init__(self, path, threads):
        import numpy as np
        import onnxruntime as ort
        o = ort.SessionOptions()
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
        o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
        self.inp = self.s.get_inputs()[0].name
        self.np = np

    def round(self, b, secs):
        x = self.np.random.RandomState(0).uniform(-2, 2, (b, 3, 224, 224)).astype("float32")
        return timed(lambda: self.s.run(None, {self.inp: x}), secs)

    def close(self):
        pass


class Ov:
    name = "openvino"

    def __init__(self, path, threads):
        import numpy as np
        import openvino as ov
        self.core, self.path, self.threads, self.np = ov.Core(), path, threads, np
        self.req, self.b = None, 0

    def round(self, b, secs):
        if b != self.b:   # a static shape per batch size (what a latency deployment compiles)
            m = self.core.read_model(self.path)
            m.reshape([b, 3, 224, 224])
            c = self.core.compile_model(m, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                   "INFERENCE_NUM_THREADS": str(self.threads)})
            self.req, self.b = c.create_infer_request(), b
        x = self.np.random.RandomState(0).uniform(-2, 2, (b, 3, 224, 224)).astype("float32")
        return timed(lambda: self.req.infer({0: x}), secs)

    def close(self):
        pass


def run(d, graft_bin, threads, secs, rounds, names):
    import onnxruntime
    import openvino
    print("versions: onnxruntime %s, openvino %s; %d threads each; %d rounds of >= %gs each, taking turns"
          % (onnxruntime.__version__, openvino.get_version().split("-")[0], threads, rounds, secs))
    print("%-20s %-22s %10s %12s %10s %10s  %s" % ("model", "measure", "graft", "onnxruntime", "openvino",
                                                   "graft/best", "load"))
    for name in names:
        path = os.path.join(d, name + ".onnx")
        engines = []
        try:
            engines.append(Graft(graft_bin, path, threads))
        except RuntimeError as e:
            print("%-20s skipped: graft cannot load it yet (%s)" % (name, str(e)[:300]))
            continue
        engines += [Ort(path, threads), Ov(path, threads)]
        for b in (1, 32):
            for e in engines:   # warm-up: primitives, packed weights, OpenVINO's compile
                e.round(b, 0.01)
            res = {e.name: [] for e in engines}
            for _ in range(rounds):
                for e in engines:
                    res[e.name].append(e.round(b, secs))
            if b == 1:   # latency: the median iteration of the best round (lower is better)
                v = {k: min(r[2] for r in rs) for k, rs in res.items()}
                best = min(v["onnxruntime"], v["openvino"])
                print("%-20s %-22s %10.2f %12.2f %10.2f %9.2fx  %s" % (name, "batch 1 latency (ms)", v["graft"],
                      v["onnxruntime"], v["openvino"], best / v["graft"], load()))
            else:        # throughput: the best round (higher is better)
                v = {k: max(r[0] * b / r[1] for r in rs) for k, rs in res.items()}
                best = max(v["onnxruntime"], v["openvino"])
                print("%-20s %-22s %10.1f %12.1f %10.1f %9.2fx  %s" % (name, "batch 32 (img/s)", v["graft"],
                      v["onnxruntime"], v["openvino"], v["graft"] / best, load()))
            sys.stdout.flush()
        for e in engines:
            e.close()
    print("(graft/best: graft's speed over the faster peer's: above 1 graft is faster)")


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3:])
    else:
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), sys.argv[7:])
