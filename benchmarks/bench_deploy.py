"""onnxruntime int8 against torch FP32 eager for the course's LSTM and CNN (lesson 07's deployment).

Figures (all measured side by side in this run, one CPU thread for every runtime; each latency is the
median of interleaved rounds, :func:`thinlab.deploy.latency`):
  deploy_speedup_int8_b{1,32}_{lstm,cnn}   torch FP32 eager time / onnxruntime int8 time (> 1: int8 faster)
  deploy_speedup_fp32_b{1,32}_{lstm,cnn}   torch FP32 eager time / onnxruntime FP32 time (the runtime alone)
  deploy_size_ratio_int8_{lstm,cnn}        FP32 ONNX file bytes / int8 ONNX file bytes (> 1: int8 smaller)
  deploy_ms_{torch,ort_fp32,ort_int8}_b{1,32}_{lstm,cnn}   the raw medians in milliseconds

The LSTM is quantised dynamically (int8 weights for its LSTM and Linear layers, activations quantised at run
time), the CNN statically (activation ranges from a calibration set: 256 clips of log-mel-like features).
The models are the lesson's architectures (101 frames × 40 mel bands, 10 words) with seeded random weights:
speed does not depend on what the weights learned. The exports are checked against torch before timing.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from thinlab import deploy
from thinlab.models import build_model

MODELS = {"lstm": "dynamic", "cnn": "static"}
BATCHES = (1, 32)
THREADS = 1
REPEATS = {1: 200, 32: 40}


def features(n: int, rng) -> np.ndarray:
    """Log-mel-like features (n, 101, 40): per-band offsets and scales, like real log energies."""
    band_mean = rng.uniform(-8, -2, 40)
    return (band_mean + 2.0 * rng.standard_normal((n, 101, 40))).astype(np.float32)


def run() -> dict[str, float]:
    rng = np.random.default_rng(0)
    X = features(256, rng)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        for name, mode in MODELS.items():
            torch.manual_seed(0)
            model = build_model(name, 10).eval()
            model.norm.set_stats(X.mean(axis=(0, 1)), X.std(axis=(0, 1)))
            fp32 = deploy.export_onnx(model, Path(tmp) / f"{name}.onnx", X)
            q = deploy.quantize_int8(fp32.path, Path(tmp) / f"{name}_int8.onnx", mode=mode,
                                     calibration=X if mode == "static" else None)
            agree = deploy.compare(model, deploy.session(q.path), X)
            runners = {"torch": deploy.torch_runner(model),
                       "ort_fp32": deploy.onnx_runner(deploy.session(fp32.path, threads=THREADS)),
                       "ort_int8": deploy.onnx_runner(deploy.session(q.path, threads=THREADS))}
            ms = {}
            for B in BATCHES:
                for r in deploy.latency(runners, X, batches=(B,), repeats=REPEATS[B], threads=THREADS):
                    ms[r["name"], B] = r["ms"]
            out[f"deploy_size_ratio_int8_{name}"] = fp32.bytes / q.bytes
            print(f"{name} ({mode} int8): {fp32.bytes:,} → {q.bytes:,} bytes ({fp32.bytes / q.bytes:.2f}x); int8 vs "
                  f"torch: same word on {agree['agreement']:.1%}, logits {agree['max_rel_diff']:.3f} apart (relative)")
            for B in BATCHES:
                t, f, i = ms["torch", B], ms["ort_fp32", B], ms["ort_int8", B]
                out[f"deploy_speedup_int8_b{B}_{name}"] = t / i
                out[f"deploy_speedup_fp32_b{B}_{name}"] = t / f
                for k, v in (("torch", t), ("ort_fp32", f), ("ort_int8", i)):
                    out[f"deploy_ms_{k}_b{B}_{name}"] = v
                print(f"  batch {B:>2}: torch FP32 {t:7.3f} ms  onnxruntime FP32 {f:7.3f} ms  int8 {i:7.3f} ms   "
                      f"int8 speedup {t / i:5.2f}x (runtime alone {t / f:5.2f}x)   [{THREADS} thread, median]",
                      flush=True)
    return out


if __name__ == "__main__":
    run()
