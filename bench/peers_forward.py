"""peers_forward.py — one peer of bench_forward (run by bench/peers.sh with the
peers' venv python): VGG16's convolutional base (torchvision's vgg16().features,
random weights) on a fixed random batch, inference, THREADS threads.

  peers_forward.py PEER H B SECONDS THREADS ONNX_DIR [TURN_IN TURN_OUT READY_FILE]
                                                    -> one line of key=value
  PEER: export (only writes the ONNX file), torch_nchw, torch_cl, torch_mkldnn (fp32), torch_bf16_nchw,
        torch_bf16_cl (bf16 autocast), torch_compile_cl, torch_compile_bf16_cl
        (torch.compile, inductor, channels_last, after warm-up),
        ort (ONNX Runtime, all graph optimizations), ov_latency, ov_throughput,
        ov_bf16_latency, ov_bf16_throughput (OpenVINO on the same ONNX file;
        the throughput hint runs its optimal number of requests at once, each
        a batch of B: img/s counts them all).
  The ONNX file ONNX_DIR/vgg16_HxH_bB.onnx is exported once from the same
  torchvision module (torch.onnx.export) by the first peer that needs it.
  With the FIFOs the measured rounds go round a ring with graft's and the other
  peers' (bench/peers.sh): all see the same background load.  READY_FILE is
  created after the warm-up, before the first turn."""
import os
import resource
import sys
import time

from peer_turns import timed


def versions():
    import importlib.metadata as md
    out = []
    for p in ("torch", "onnxruntime", "openvino"):
        try:
            out.append("%s=%s" % (p, md.version(p)))
        except md.PackageNotFoundError:
            pass
    return " ".join(out)


def torch_model(h, b):
    import torch
    from torchvision.models import vgg as tv_vgg
    torch.manual_seed(0)
    # exactly torchvision.models.vgg16().features, without its 124M-parameter classifier
    model = tv_vgg.make_layers(tv_vgg.cfgs["D"], batch_norm=False).eval()
    x = torch.rand(b, 3, h, h) * 255 - 128
    return model, x


def onnx_file(onnx_dir, h, b):
    """The ONNX export of the same network at [b, 3, h, h] (made once, atomically)."""
    path = os.path.join(onnx_dir, "vgg16_%dx%d_b%d.onnx" % (h, h, b))
    if os.path.exists(path):
        return path
    import torch
    model, x = torch_model(h, b)
    tmp = path + ".%d.tmp" % os.getpid()
    with torch.no_grad():
        torch.onnx.export(model, (x,), tmp, input_names=["input"], output_names=["features"],
                          opset_version=17, dynamo=False)
    os.replace(tmp, path)
    return path


def make(peer, h, b, threads, onnx_dir):
    """(run, images per run, description) for one peer variant."""
    if peer.startswith("torch"):
        import torch
        torch.set_num_threads(threads)
        model, x = torch_model(h, b)
        if "_cl" in peer:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        if peer == "torch_mkldnn":
            import torch.utils.mkldnn
            model, x = torch.utils.mkldnn.to_mkldnn(model), x.to_mkldnn()
        if "compile" in peer:
            model = torch.compile(model)        # inductor (the default backend)
        bf16 = "bf16" in peer

        def run():
            with torch.no_grad():
                if bf16:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return model(x)
                return model(x)
        return run, b, "torch " + torch.__version__
    import numpy as np
    x = (np.random.default_rng(0).random((b, 3, h, h), dtype=np.float32) * 255 - 128)
    path = onnx_file(onnx_dir, h, b)
    if peer == "ort":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # no spinning between runs: the other processes of the ring get the cores
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feed = {"input": x}
        return (lambda: sess.run(None, feed)), b, "onnxruntime " + ort.__version__
    if peer.startswith("ov_"):
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints
        core = ov.Core()
        mode = hints.PerformanceMode.THROUGHPUT if peer.endswith("throughput") else hints.PerformanceMode.LATENCY
        prec = ov.Type.bf16 if "bf16" in peer else ov.Type.f32
        cfg = {hints.performance_mode: mode, props.inference_num_threads: threads,
               hints.inference_precision: prec}
        cm = core.compile_model(core.read_model(path), "CPU", cfg)
        got = cm.get_property(hints.inference_precision)
        if peer.endswith("throughput"):
            n = cm.get_property(props.optimal_number_of_infer_requests)
            q = ov.AsyncInferQueue(cm, n)

            def run():
                for _ in range(n):
                    q.start_async({0: x})
                q.wait_all()
            return run, n * b, "openvino %s %s nireq=%d prec=%s" % (ov.__version__.split("-")[0], mode.name, n, got.get_type_name())
        req = cm.create_infer_request()
        return (lambda: req.infer({0: x})), b, "openvino %s %s prec=%s" % (ov.__version__.split("-")[0], mode.name, got.get_type_name())
    raise SystemExit("peers_forward: unknown peer %s" % peer)


def main():
    peer, h, b, secs, threads, onnx_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    if peer == "export":        # bench/peers.sh makes the ONNX file once, before the peers start
        print(onnx_file(onnx_dir, h, b))
        return
    t0 = time.perf_counter()
    run, imgs, desc = make(peer, h, b, threads, onnx_dir)
    for _ in range(3):          # warm-up: torch.compile's compilation, primitive creation, packing
        run()
    warm = time.perf_counter() - t0
    turn = None
    if len(sys.argv) >= 10:
        turn = (os.open(sys.argv[7], os.O_RDWR), os.open(sys.argv[8], os.O_RDWR))
        open(sys.argv[9], "w").close()
    ips, mean, steps = timed(run, imgs, secs, turn)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("who=peer peer=%s size=%d batch=%d threads=%d img_s=%.2f mean_img_s=%.2f warmup_s=%.1f "
          "rss_mb=%.1f desc=%s" % (peer, h, b, threads, ips, mean, warm, rss, desc.replace(" ", "_")))


if __name__ == "__main__":
    main()
