"""Lesson 07's study: every baseline exported to ONNX and int8, thinlab's stored formats beside them,
one table of bytes, latency and accuracy, and the thesis's "nearly 20X" taken apart.

The deployment tools themselves are :mod:`thinlab.deploy` (export, quantise, sessions, runners,
latency); this module runs them over the lesson's models and returns records (for the results JSON
and the tests) and the sentences the lesson prints.

Taught in: 07_deploy
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from thinlab import deploy, stats
from thinlab.experiments.pareto import eval_set  # noqa: F401  (the lesson's evaluation clips, as in 06)

#: the seed thesis's LSTM (quoted, measured on its own machine in TensorFlow Lite): seconds per clip
THESIS = {"fp32_s_per_clip": 0.054, "fp16_tflite_s_per_clip": 0.0026}
THESIS["speedup"] = THESIS["fp32_s_per_clip"] / THESIS["fp16_tflite_s_per_clip"]


def ops_line(ops: dict) -> str:
    """``'Conv×4, Relu×6, ...'`` from an operator count, most frequent first. Taught in: 07_deploy"""
    return ", ".join(f"{k}×{v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1]))


def score_fp32(base: dict, ev: dict) -> tuple[dict, dict, list]:
    """Per-clip hits, accuracy and torch file bytes of each FP32 model in ``base`` on ``ev``.

    Returns ``(hits, record, lines)``: ``hits[name]`` bool (N,), ``record[name]`` = ``{acc, torch_bytes}``,
    one printed line per model with its speaker-bootstrap interval.

    Taught in: 07_deploy
    """
    hits = {n: deploy.correct(deploy.torch_runner(m), ev["X"], ev["y"]) for n, m in base.items()}
    record, lines = {}, []
    for n, m in base.items():
        nbytes = deploy.torch_bytes(m)
        record[n] = {"acc": float(hits[n].mean()), "torch_bytes": nbytes}
        lines.append(f"{n:>4}: {nbytes:>10,} bytes as a torch file, accuracy "
                     f"{stats.accuracy_interval(hits[n], ev['speakers']).text()}")
    return hits, record, lines


def export_all(base: dict, folder, X_trace, X_eval) -> tuple[dict, dict, list]:
    """Export each model to ``folder/<name>_fp32.onnx`` (traced on ``X_trace``) and compare the file with
    torch on every clip of ``X_eval``; raises when one differs by more than :data:`thinlab.deploy.FP32_RTOL`.

    Returns ``(reports, record, lines)``: the :class:`thinlab.deploy.ExportReport` per model, the record
    (``bytes``, ``ops``, ``max_rel_diff``, ``agreement``, ``n``) and the printed lines.

    Taught in: 07_deploy
    """
    reports, record, lines = {}, {}, []
    for name, model in base.items():
        rep = deploy.export_onnx(model, Path(folder) / f"{name}_fp32.onnx", X_trace)
        got = deploy.compare(model, deploy.session(rep.path), X_eval)
        if got["max_rel_diff"] > deploy.FP32_RTOL:
            raise AssertionError(f"{name}: the export differs from torch by {got['max_rel_diff']:.1e}")
        reports[name], record[name] = rep, {"bytes": rep.bytes, "ops": rep.ops, **got}
        lines.append(f"{name:>4}: {rep.bytes:>10,} bytes, exported in {rep.seconds:.1f} s; largest relative difference "
                     f"from torch {got['max_rel_diff']:.1e} on {got['n']} clips, same word on {got['agreement']:.1%}\n"
                     f"      operators: {ops_line(rep.ops)}")
    return reports, record, lines


def int8_all(base: dict, exports: dict, folder, *, modes: dict, calibration, ev: dict, hits_fp32: dict
             ) -> tuple[dict, list]:
    """Quantise each exported model to ``folder/<name>_int8.onnx`` (``modes[name]``: "dynamic" or "static",
    the latter calibrated on ``calibration``) and score it against torch FP32 on ``ev``.

    Returns ``(record, lines)``: per model ``mode``, ``bytes``, ``path``, ``int8_share``, ``acc``,
    ``max_rel_diff``, ``agreement``, ``n`` and ``vs_fp32`` (paired speaker-bootstrap verdict). Raises when
    under 90 % of the weights are 8-bit, or when the accuracies differ by more than the share of clips
    on which the two models disagree (they score the same on every clip where they pick the same word).

    Taught in: 07_deploy
    """
    record, lines = {}, []
    for name, model in base.items():
        mode = modes[name]
        q = deploy.quantize_int8(exports[name].path, Path(folder) / f"{name}_int8.onnx", mode=mode,
                                 calibration=calibration if mode == "static" else None)
        got = deploy.compare(model, deploy.session(q.path), ev["X"])
        hits8 = deploy.correct(deploy.onnx_runner(deploy.session(q.path)), ev["X"], ev["y"])
        acc8 = float(hits8.mean())
        verdict = stats.paired_compare(hits8, hits_fp32[name], ev["speakers"], a="int8", b="FP32")
        if abs(acc8 - float(hits_fp32[name].mean())) > 1 - got["agreement"] + 1e-9:
            raise AssertionError(f"{name}: accuracies differ by more than the share of clips the models disagree on")
        if q.int8_share <= 0.9:
            raise AssertionError(f"{name}: only {q.int8_share:.0%} of the weights are 8-bit")
        record[name] = {"mode": mode, "bytes": q.bytes, "path": str(q.path), "int8_share": q.int8_share, "acc": acc8,
                        **got, "vs_fp32": verdict.as_dict()}
        lines.append(f"{name:>4} ({mode:>7}): {q.bytes:>9,} bytes ({exports[name].bytes / q.bytes:.1f}x smaller than "
                     f"FP32 ONNX), {q.int8_share:.0%} of weights in 8 bits; same word as torch on "
                     f"{got['agreement']:.1%} "
                     f"of clips, logits {got['max_rel_diff']:.3f} apart\n      {verdict.text()}\n"
                     f"      operators: {ops_line(q.ops)}")
    return record, lines


def compressed_dnns(dnn, ds, *, pipeline: dict, kmeans_bits: int, deepthin_fraction: float, finetune_epochs: int,
                    seed: int = 0, device=None) -> tuple[dict, int]:
    """The DNN three of thinlab's ways, each on the CPU in eval mode: ``"pipeline"`` (lesson 06's stages,
    ``pipeline`` = ``{prune_factor, factor_method, factor_fraction, quant_bits}``, fine-tuned after each),
    ``"kmeans"`` (every Linear at ``kmeans_bits``, post-training) and ``"deepthin"`` (hidden layers at
    ``deepthin_fraction``, fine-tuned). Returns ``(models, keep)``, ``keep`` the pruned width.

    Taught in: 07_deploy
    """
    from thinlab.experiments import pipeline as pl
    from thinlab.nn import compress
    from thinlab.train import finetune

    def tuned(m, desc):
        finetune(m, ds.X_train, ds.y_train, epochs=finetune_epochs, seed=seed, progress=False, desc=desc, device=device)
        return m.cpu().eval()

    keep = pl.keep_for_factor(dnn, pipeline["prune_factor"])
    m = tuned(pl.stage_prune(dnn, keep=keep), "prune")
    m = tuned(pl.stage_factorize(m, method=pipeline["factor_method"], size_fraction=pipeline["factor_fraction"]),
              "factorize")
    models = {"pipeline": tuned(pl.stage_quantize(m, n_bits=pipeline["quant_bits"]), "quantize"),
              "kmeans": compress(dnn, method="kmeans", n_bits=kmeans_bits).cpu().eval(),
              "deepthin": tuned(compress(dnn, method="deepthin", size_fraction=deepthin_fraction,
                                         layers=pl.hidden_layers(dnn)), "deepthin")}
    return models, keep


def store_all(models: dict, folder, X) -> tuple[dict, list]:
    """Save each model to ``folder/dnn_<key>.npz``, load it back (timed) and check the reload's logits on
    ``X[:64]``. Returns ``(stored, lines)``: per key ``model`` (the reload), ``bytes`` (file),
    ``report_bytes`` (:func:`thinlab.nn.size_report`) and ``decode_ms`` (loading into a runnable model).

    Taught in: 07_deploy
    """
    from thinlab.nn import load_compressed, save_compressed, size_report

    stored, lines = {}, []
    for key, m in models.items():
        path = Path(folder) / f"dnn_{key}.npz"
        nbytes = save_compressed(m, path)
        t0 = time.perf_counter()
        loaded = load_compressed(path)
        decode_ms = 1e3 * (time.perf_counter() - t0)
        if not np.allclose(deploy.torch_logits(loaded, X[:64]), deploy.torch_logits(m, X[:64]), atol=1e-4):
            raise AssertionError(f"{key}: the reloaded model computes something else")
        report = int(size_report(m).total_bytes)
        stored[key] = {"model": loaded, "bytes": int(nbytes), "report_bytes": report, "decode_ms": decode_ms}
        lines.append(f"{key:>9}: {nbytes:>9,} bytes in the file ({report:,} counted by size_report); loading it into a "
                     f"runnable model took {decode_ms:.0f} ms")
    return stored, lines


def fused_check(model, X) -> float:
    """Largest relative difference between thinlab's numpy fused forward (:func:`thinlab.deploy.fused_forward`,
    W never built) and torch on ``X``; raises above 1e-4. Taught in: 07_deploy"""
    ref = deploy.torch_logits(model, X)
    diff = float(np.abs(deploy.fused_forward(model)(X) - ref).max() / max(np.abs(ref).max(), 1e-12))
    if diff >= 1e-4:
        raise AssertionError(f"the fused DeepThin forward differs from torch by {diff:.1e}")
    return diff


def variants(base: dict, exports: dict, int8: dict, stored: dict, *, labels: dict, pipeline_int8, threads: int = 1
             ) -> list[dict]:
    """Every (model, format) the lesson times: torch FP32, ONNX FP32 and ONNX int8 per model in ``base``;
    each stored DNN in ``stored`` decoded + run (``labels[key]`` its format name); the DeepThin DNN fused in
    torch and in numpy; and the pipeline model through ONNX int8 (``pipeline_int8``, a
    :class:`thinlab.deploy.QuantReport`). Each variant: ``model``, ``format``, ``runtime``, ``bytes``,
    ``runner`` (``fn(X) -> logits``), ``decode_ms``; onnxruntime sessions use ``threads``.

    Taught in: 07_deploy
    """
    S = lambda path: deploy.onnx_runner(deploy.session(path, threads=threads))  # noqa: E731
    V = lambda m, fmt, rt, b, fn, dec=None: {"model": m, "format": fmt, "runtime": rt, "bytes": int(b),  # noqa: E731
                                              "runner": fn, "decode_ms": dec}
    out = []
    for n, m in base.items():
        out += [V(n, "torch FP32", "torch eager", deploy.torch_bytes(m), deploy.torch_runner(m)),
                V(n, "ONNX FP32", "onnxruntime FP32", exports[n].bytes, S(exports[n].path)),
                V(n, f"ONNX int8 ({int8[n]['mode']})", "onnxruntime int8", int8[n]["bytes"], S(int8[n]["path"]))]
    for k, label in labels.items():      # fused=False: DeepThin too rebuilds W on every call
        st = stored[k]
        out.append(V("dnn", label, "thinlab: decode + run", st["bytes"], deploy.torch_runner(st["model"], fused=False),
                     st["decode_ms"]))
    dt = stored["deepthin"]
    out += [V("dnn", "DeepThin .npz, fused (torch)", "thinlab: fused torch", dt["bytes"],
              deploy.torch_runner(dt["model"]), dt["decode_ms"]),
            V("dnn", "DeepThin .npz, fused (numpy)", "thinlab: fused numpy", dt["bytes"],
              deploy.fused_forward(dt["model"]), dt["decode_ms"]),
            V("dnn", "pipeline (06) → ONNX int8", "onnxruntime int8", pipeline_int8.bytes, S(pipeline_int8.path))]
    return out


def deploy_table(variants: list, ev: dict, hits_fp32: dict, *, repeats: int, threads: int = 1,
                 batches=(1, 32)) -> list[dict]:
    """Bytes, accuracy and median latency of every variant (:func:`variants`), against torch FP32 of the
    same model (the variant whose format is "torch FP32").

    Rows: ``model``, ``format``, ``runtime``, ``bytes``, ``size_factor`` (torch FP32 bytes / bytes),
    ``accuracy`` (on ``ev``), ``vs_fp32`` (paired verdict against ``hits_fp32[model]``), ``ms_b<B>`` and
    ``speedup_b<B>`` for each batch size, ``decode_ms``.

    Taught in: 07_deploy
    """
    key = lambda v: f"{v['model']} · {v['format']}"  # noqa: E731
    lat = deploy.latency({key(v): v["runner"] for v in variants}, ev["X"], batches=batches, repeats=repeats,
                         threads=threads)
    ms = {(r["name"], r["batch"]): r["ms"] for r in lat}
    ref = {v["model"]: v for v in variants if v["format"] == "torch FP32"}
    rows = []
    for v in variants:
        hits = deploy.correct(v["runner"], ev["X"], ev["y"])
        r = {k: v[k] for k in ("model", "format", "runtime", "bytes")}
        r.update(size_factor=ref[v["model"]]["bytes"] / v["bytes"], accuracy=float(hits.mean()),
                 vs_fp32=stats.paired_compare(hits, hits_fp32[v["model"]], ev["speakers"]).verdict)
        for b in batches:
            r[f"ms_b{b}"] = ms[key(v), b]
            r[f"speedup_b{b}"] = ms[key(ref[v["model"]]), b] / ms[key(v), b]
        rows.append(dict(r, decode_ms=v["decode_ms"]))
    return rows


def readable(rows) -> list[dict]:
    """Copies of :func:`deploy_table` rows for reading: factors as ``"3.2x"`` strings, latencies in ms with
    3 significant digits, ``decode_ms`` blank where nothing is decoded (for :func:`thinlab.teach.table`).

    Taught in: 07_deploy
    """
    out = []
    for r in rows:
        d = dict(r)
        for k in [k for k in d if k == "size_factor" or k.startswith("speedup_")]:
            d[k] = f"{d[k]:.{1 if k == 'size_factor' else 2}f}x"
        for k in [k for k in d if k.startswith("ms_") or k == "decode_ms"]:
            d[k] = "" if d[k] is None else f"{d[k]:.3g}"
        out.append(d)
    return out


def row(rows, model: str, prefix: str) -> dict:
    """The first table row of ``model`` whose format starts with ``prefix``. Taught in: 07_deploy"""
    for r in rows:
        if r["model"] == model and r["format"].startswith(prefix):
            return r
    raise KeyError(f"no row for model {model!r} with a format starting {prefix!r}")


def runtime_vs_precision(rows, models, batches=(1, 32)) -> dict:
    """Per model and batch: torch FP32 → onnxruntime FP32 (``runtime_x``, only the runtime changes) and
    onnxruntime FP32 → int8 (``int8_x``, only the arithmetic changes); ``total_x`` is their product, and
    ``int8_s_per_clip`` the int8 seconds per clip. Taught in: 07_deploy"""
    out = {}
    for m in models:
        out[m] = {}
        for b in batches:
            t, o, i = (row(rows, m, p)[f"ms_b{b}"] for p in ("torch FP32", "ONNX FP32", "ONNX int8"))
            out[m][f"b{b}"] = {"torch_ms": t, "ort_fp32_ms": o, "ort_int8_ms": i, "runtime_x": t / o, "int8_x": o / i,
                               "total_x": t / i, "int8_s_per_clip": i / 1e3 / b}
    return out


def attribution(runtime_x: float, int8_x: float) -> str:
    """Which of two multiplying speed factors (the runtime's, then int8's) made the total, in words chosen
    from the numbers: a factor below 1 is a slowdown, and "most" goes to the larger one on a log scale.

    Taught in: 07_deploy
    """
    if not (runtime_x > 0 and int8_x > 0):
        raise ValueError(f"runtime_x={runtime_x!r}, int8_x={int8_x!r}: speed factors must be positive")
    total = runtime_x * int8_x
    parts = {"the runtime": runtime_x, "the 8-bit arithmetic": int8_x}
    slow = [k for k, v in parts.items() if v < 1]
    if total <= 1:
        return ("Ours is no speedup at all: " + " and ".join(f"{k} ({v:.2f}x)" for k, v in parts.items())
                + f" multiply to {total:.2f}x.")
    if slow:
        fast = next(k for k in parts if k not in slow)
        return (f"All of ours comes from {fast} ({parts[fast]:.2f}x); {slow[0]} slowed it down "
                f"({parts[slow[0]]:.2f}x).")
    big, small = sorted(parts, key=lambda k: -abs(np.log(parts[k])))
    if abs(np.log(parts[big]) - np.log(parts[small])) < 0.05:          # within 5 %: neither is "most"
        return f"Ours comes about equally from the runtime ({runtime_x:.2f}x) and the 8-bit arithmetic ({int8_x:.2f}x)."
    return f"Most of ours comes from {big} ({parts[big]:.2f}x), less from {small} ({parts[small]:.2f}x)."


def thesis_lines(comparison: dict, *, threads: int, modes: dict, thesis: dict = THESIS) -> list[str]:
    """The lesson's sentences on the thesis's "nearly 20X", from :func:`runtime_vs_precision` (needs
    "lstm"; "cnn" and "dnn" are described too when present). Taught in: 07_deploy"""
    L = comparison["lstm"]["b1"]
    out = [f"LSTM at batch 1, {threads} thread(s): torch FP32 {L['torch_ms']:.3f} ms, onnxruntime FP32 "
           f"{L['ort_fp32_ms']:.3f} ms ({L['runtime_x']:.2f}x from the runtime), onnxruntime int8 "
           f"{L['ort_int8_ms']:.3f} ms ({L['int8_x']:.2f}x from int8): {L['total_x']:.2f}x in all.",
           f"The thesis quoted {thesis['speedup']:.1f}x (float16 TFLite vs full precision, its machine). "
           + (f"We measured {L['total_x']:.1f}x: nowhere near it. " if L["total_x"] < thesis["speedup"] / 2 else
              f"We measured {L['total_x']:.1f}x, well above it. " if L["total_x"] > 2 * thesis["speedup"] else
              f"We measured {L['total_x']:.1f}x, of the same order. ")
           + attribution(L["runtime_x"], L["int8_x"])]
    if "b32" in comparison["lstm"]:
        out.append(f"Per clip, our int8 LSTM takes {L['int8_s_per_clip']:.5f} s at batch 1 and "
                   f"{comparison['lstm']['b32']['int8_s_per_clip']:.6f} s at batch 32; the thesis's TFLite model took "
                   f"{thesis['fp16_tflite_s_per_clip']} s and its full-precision one {thesis['fp32_s_per_clip']} s. "
                   "Different machines, so compare the ratios, not the seconds.")
    for m in ("cnn", "dnn"):
        if m in comparison:
            c = comparison[m]["b1"]
            out.append(f"{m.upper()} at batch 1: {c['runtime_x']:.2f}x from the runtime, {c['int8_x']:.2f}x from int8 "
                       f"({modes[m]}), {c['total_x']:.2f}x in all"
                       + (" — int8 was slower than FP32 in the same runtime here" if c["int8_x"] < 1 else ""))
    return out


def summary_lines(rows, models, labels: dict) -> list[str]:
    """The closing sentences of lesson 07 from the table: smallest file, fastest runner, int8 per model,
    each stored format, DeepThin fused. Taught in: 07_deploy"""
    small, fast = min(rows, key=lambda r: r["bytes"]), min(rows, key=lambda r: r["ms_b1"])
    out = [f"Smallest file: {small['model']} · {small['format']}, {small['bytes']:,} bytes "
           f"({small['size_factor']:.0f}x below its torch FP32 file), accuracy {small['accuracy']:.3f}.",
           f"Fastest at batch 1: {fast['model']} · {fast['format']}, {fast['ms_b1']:.3f} ms."]
    for m in models:
        r8 = row(rows, m, "ONNX int8")
        out.append(f"{m.upper()}: onnxruntime int8 is {r8['speedup_b1']:.2f}x (batch 1) and {r8['speedup_b32']:.2f}x "
                   f"(batch 32) the speed of torch FP32, in a {r8['size_factor']:.1f}x smaller file; accuracy "
                   f"{r8['accuracy']:.3f} vs {row(rows, m, 'torch FP32')['accuracy']:.3f} ({r8['vs_fp32']}).")
    for label in labels.values():
        r = row(rows, "dnn", label)
        out.append(f"DNN {label}: {r['size_factor']:.0f}x smaller than torch FP32, decode + run {r['speedup_b1']:.2f}x "
                   "its speed at batch 1.")
    for kind in ("torch", "numpy"):
        r = row(rows, "dnn", f"DeepThin .npz, fused ({kind})")
        out.append(f"DNN DeepThin fused in {kind}: {r['speedup_b1']:.2f}x (batch 1), {r['speedup_b32']:.2f}x "
                   "(batch 32) the speed of torch FP32.")
    return out


def headline(rows, models) -> dict:
    """``{"<model>_speedup_b1", "_speedup_b32", "_size_factor"}`` of each model's ONNX int8 row. Taught in: 07_deploy"""
    return {f"{m}_{k}": row(rows, m, "ONNX int8")[k] for m in models
            for k in ("speedup_b1", "speedup_b32", "size_factor")}


def chart_rows(rows, batches=(1, 32)) -> tuple[list, list, list]:
    """``(sizes, latencies, order)`` for the lesson's two panels: one row per variant with ``variant``,
    ``bytes``, ``runtime``; one per variant and batch with ``ms`` and ``batch``; the variants in table order.

    Taught in: 07_deploy
    """
    order = [f"{r['model']} · {r['format']}" for r in rows]
    sizes = [{"variant": o, "bytes": r["bytes"], "runtime": r["runtime"]} for o, r in zip(order, rows)]
    lat = [{"variant": o, "runtime": r["runtime"], "batch": f"batch {b}", "ms": r[f"ms_b{b}"]}
           for o, r in zip(order, rows) for b in batches]
    return sizes, lat, order
