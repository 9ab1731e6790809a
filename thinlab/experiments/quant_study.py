"""Lesson 04's experiments as tested functions: the int8 cast, the thesis's fixed-point table, the
uniform / k-means / OMSE / multi-bit comparisons on one layer, the whole-network sweep with paired
verdicts, packing and Huffman bytes, fake-quant fine-tuning and the bits explorer's plain rows.

Everything here composes :mod:`thinlab.experiments.quant_sweep` (quantise, honest bytes, relative
error, dequantised copies) and the numpy kernels of :mod:`thinlab.quant`; scoring goes through a
:class:`thinlab.experiments.setup.Lesson` (``test_hits``, ``interval``, ``compare``). Weights are
the paper's W (Q, R) = (in, out), as :func:`thinlab.nn.layer_weights` gives them.

Taught in: 04_quantization
"""
from __future__ import annotations

import copy

import numpy as np

from thinlab import quant, train
from thinlab.experiments import quant_sweep as qm
from thinlab.nn.weights import set_layer_weights
from thinlab.size import shape_bytes

#: the lesson's quantiser names (the explorer's menu) → quant_sweep / method-registry keys
def _rel(w, w_hat) -> float:
    """||w − ŵ||² / ||w||² of one layer."""
    return qm.relative_error({"w": w}, {"w": w_hat})


def weight_table(W: dict) -> list[dict]:
    """One row per layer of ``W`` (name → W (Q, R)): shape, number of weights, std and max |w|.

    Taught in: 04_quantization
    """
    return [{"layer": n, "W (Q, R)": tuple(w.shape), "weights": int(w.size), "std": float(w.std()),
             "max |w|": float(np.abs(w).max())} for n, w in W.items()]


def cast_bytes(model, W: dict) -> int:
    """Bytes of ``model`` with every W in ``W`` stored by the int8 cast: one byte per weight and the
    shape, no scale; everything else float32 (:func:`quant_sweep.other_bytes`).

    Taught in: 04_quantization
    """
    return qm.other_bytes(model, layers=list(W)) + sum(w.size + shape_bytes(w.shape) for w in W.values())


def int8_cast_study(model, W: dict, lesson) -> dict:
    """The seed thesis's int8 cast (round, clip to [−128, 127], no scale) of every layer of ``W``.

    Returns ``{"cast": name → Ŵ, "model", "test_acc", "zero_share", "n_predicted_words", "max_abs",
    "bytes", "relative_error"}``: the test accuracy of the cast model, the share of weights that round to
    0, how many distinct words it predicts on the test clips, and its honest bytes.

    Taught in: 04_quantization
    """
    cast = {n: quant.cast_int8_dequantized(w) for n, w in W.items()}
    m = qm.with_weights(model, cast)
    n_weights = sum(w.size for w in W.values())
    return {"cast": cast, "model": m, "test_acc": lesson.test_acc(m),
            "zero_share": sum(int((c == 0).sum()) for c in cast.values()) / n_weights,
            "n_predicted_words": int(len(np.unique(train.predict(m, lesson.ds.X_test)))),
            "max_abs": float(max(np.abs(w).max() for w in W.values())),
            "bytes": cast_bytes(model, W), "relative_error": qm.relative_error(W, cast)}


def fixed_point_curve(w, *, word_bits=(2, 4, 8), frac_bits=range(16)) -> list[dict]:
    """Mean squared error of W/F fixed point on ``w`` for each word length and fraction bits F.

    Rows ``{"F", "word bits", "MSE"}`` (word bits as the label "W = b"), for a line chart.
    Taught in: 04_quantization
    """
    return [{"F": F, "word bits": f"W = {b}", "MSE": quant.fixed_point_mse(w, word_bits=b, frac_bits=F)}
            for b in word_bits for F in frac_bits]


def fixed_point_choice(w, *, word_bits: int, frac_bits: int) -> dict:
    """What the chosen F means for ``w`` at ``word_bits``: step, range, and the largest F that clips nothing.

    Returns ``{"F", "step", "lo", "hi", "no_clip_F", "clips"}``; ``clips`` is True when the chosen F
    clips the largest weights to get a finer step than ``no_clip_F``.
    Taught in: 04_quantization
    """
    big = float(np.abs(w).max())
    no_clip = max(f for f in range(-8, 25) if quant.fixed_point_range(word_bits=word_bits, frac_bits=f)[1] >= big)
    lo, hi, step = quant.fixed_point_range(word_bits=word_bits, frac_bits=frac_bits)
    return {"F": int(frac_bits), "step": step, "lo": lo, "hi": hi, "no_clip_F": int(no_clip),
            "clips": frac_bits != no_clip}


def fixed_point_table(model, W: dict, lesson, *, bits, base_hits) -> list[dict]:
    """The thesis's fixed-point table on our model: every layer at each word length with its own best F.

    One row per word length: ``{"bits", "best_F": layer → F, "test_acc", "se", "vs_float32", "bytes",
    "relative_error"}``; ``vs_float32`` is the paired speaker-aware verdict against ``base_hits``.
    Taught in: 04_quantization
    """
    rows = []
    for b in bits:
        qz = qm.quantize_weights(W, method="fixed", n_bits=b)
        hits = lesson.test_hits(qm.with_weights(model, qz))
        rows.append({"bits": int(b), "best_F": {n: int(q.detail["frac_bits"]) for n, q in qz.items()},
                     "test_acc": float(hits.mean()), "se": lesson.interval(hits).se,
                     "vs_float32": lesson.compare(hits, base_hits, a=f"{b} bits", b="float32").verdict,
                     "bytes": qm.model_bytes(model, qz), "relative_error": qm.relative_error(W, qz)})
    return rows


UNIFORM_VARIANTS = {"uniform_sym": "symmetric, per tensor", "uniform_asym": "asymmetric, per tensor",
                    "uniform_sym_channel": "symmetric, per channel", "uniform_asym_channel": "asymmetric, per channel"}


def uniform_variants(w, *, bits=range(2, 9)) -> list[dict]:
    """Relative error, bytes and side bytes of the four uniform quantisers on one layer ``w`` (Q, R).

    Rows ``{"bits", "key", "quantiser", "relative error", "bytes", "code bytes", "side bytes"}``.
    Taught in: 04_quantization
    """
    rows = []
    for b in bits:
        for key, label in UNIFORM_VARIANTS.items():
            q = qm.quantize_layer(w, method=key, n_bits=b)
            rows.append({"bits": int(b), "key": key, "quantiser": label, "relative error": _rel(w, q),
                         "bytes": q.bytes, "code bytes": q.code_bytes, "side bytes": q.side_bytes})
    return rows


def kmeans_vs_uniform(w, *, n_bits: int = 3) -> dict:
    """k-means (2**n_bits shared values) against uniform asymmetric levels on one layer ``w``.

    Returns relative errors, bytes, Lloyd iterations, the codebook and all uniform grid levels.
    Taught in: 04_quantization
    """
    km = quant.kmeans_quantize(w, n_clusters=2 ** n_bits)
    ua = qm.quantize_layer(w, method="uniform_asym", n_bits=n_bits)
    qa = quant.quantize_uniform(w, n_bits=n_bits, symmetric=False)
    levels = (np.arange(2 ** n_bits) - int(qa.zero_point)) * float(qa.scale)     # every level of the grid
    return {"n_bits": n_bits, "kmeans_relative_error": km.mse / float(np.mean(np.asarray(w, np.float64) ** 2)),
            "uniform_relative_error": _rel(w, ua), "kmeans_bytes": quant.kmeans_bytes(km), "uniform_bytes": ua.bytes,
            "codebook_bytes": 4 * len(km.codebook), "n_iter": int(km.n_iter), "codebook": np.asarray(km.codebook),
            "uniform_levels": levels}


def omse_table(w, *, bits=(2, 3, 4, 8)) -> list[dict]:
    """OMSE clipping against the min/max range (symmetric uniform) on one layer ``w``, per bit width.

    Rows ``{"bits", "clip", "clip c / max|w|", "error min/max", "error OMSE", "clipped weights",
    "round to 0 (min/max)"}``; the last is the share of weights below half the min/max step at 2 bits'
    coarsest grid (|w| < step / 2 with step = max|w| / (2**(bits−1) − 1)).
    Taught in: 04_quantization
    """
    w64, big = np.asarray(w, np.float64), float(np.abs(w).max())
    rows = []
    for b in bits:
        c = float(quant.omse_clip(w, n_bits=b, symmetric=True))
        rows.append({"bits": int(b), "clip": c, "clip c / max|w|": c / big,
                     "error min/max": _rel(w, qm.quantize_layer(w, method="uniform_sym", n_bits=b)),
                     "error OMSE": _rel(w, qm.quantize_layer(w, method="omse", n_bits=b)),
                     "clipped weights": float(np.mean(np.abs(w64) > c)),
                     "round to 0 (min/max)": float(np.mean(np.abs(w64) < big / (2 ** (b - 1) - 1) / 2))})
    return rows


def multibit_table(w, *, bits=range(1, 9)) -> list[dict]:
    """Relative error of greedy multi-bit binarisation (with and without the least-squares refit of α)
    and of k-means (reference) on one layer ``w``, per bit width. Rows ``{"bits", "quantiser", "relative error"}``.

    Taught in: 04_quantization
    """
    rows = []
    for b in bits:
        for label, refine in (("greedy", False), ("greedy + least-squares α", True)):
            deq = quant.multibit_dequantize(quant.multibit_quantize(w, n_bits=b, refine=refine))
            rows.append({"bits": int(b), "quantiser": label, "relative error": _rel(w, deq)})
        rows.append({"bits": int(b), "quantiser": "k-means (reference)",
                     "relative error": _rel(w, qm.quantize_layer(w, method="kmeans", n_bits=b))})
    return rows


def sweep_study(model, lesson, *, bits, base_hits, cast: dict | None = None) -> list[dict]:
    """:func:`quant_sweep.sweep` of every quantiser × bit width scored on the test clips, each row with
    its paired verdict against float32 (``"vs_float32"``), plus the int8 cast as one row at 8 bits when
    ``cast`` (from :func:`int8_cast_study`) is given.

    Taught in: 04_quantization
    """
    hits = []

    def scored(m):
        hits.append(lesson.test_hits(m))
        return float(hits[-1].mean())

    rows = qm.sweep(model, scored, bits=bits)
    for r, h in zip(rows, hits):
        r["vs_float32"] = lesson.compare(h, base_hits).verdict
    if cast is not None:
        dense = rows[0]["bytes"] / rows[0]["size_fraction"] if rows else cast["bytes"]
        rows.append({"method": "int8_cast", "label": "int8 cast (no scale)", "bits": 8, "accuracy": cast["test_acc"],
                     "bytes": cast["bytes"], "size_fraction": cast["bytes"] / dense,
                     "relative_error": cast["relative_error"],
                     "vs_float32": lesson.compare(lesson.test_hits(cast["model"]), base_hits).verdict})
    return rows


def fewest_bits(rows: list[dict]) -> dict:
    """Quantiser label → the fewest bits whose model is not worse than float32 (paired verdict), over
    the sweep's rows (the int8 cast left out), sorted by bits. Taught in: 04_quantization"""
    best = {}
    for r in rows:
        if r["method"] != "int8_cast" and r["vs_float32"] != "worse":
            best[r["label"]] = min(best.get(r["label"], r["bits"]), r["bits"])
    return dict(sorted(best.items(), key=lambda kv: kv[1]))


def error_threshold(rows: list[dict]) -> dict | None:
    """The smallest relative weight error that cost accuracy beyond noise, and how many settings that
    held had less error than it; None when no setting cost accuracy. Taught in: 04_quantization"""
    held = [r["relative_error"] for r in rows if r["vs_float32"] != "worse"]
    fell = [r["relative_error"] for r in rows if r["vs_float32"] == "worse"]
    if not fell:
        return None
    return {"smallest_costly_error": min(fell), "n_held_below": sum(e < min(fell) for e in held), "n_held": len(held)}


def packing_table(w, *, n_bits: int = 3) -> dict:
    """Bytes of one layer ``w`` at ``n_bits`` asymmetric codes: float32, one code per uint8, packed, and
    packed with scale, zero point and shape. Returns ``{"rows", "n_codes", "packed", "roundtrip"}``
    (``roundtrip``: unpacking gives back every code). Taught in: 04_quantization
    """
    q = quant.quantize_uniform(w, n_bits=n_bits, symmetric=False)
    packed = quant.pack_bits(q.codes, n_bits=n_bits)
    back = quant.unpack_bits(packed, n_bits=n_bits, count=q.codes.size).reshape(np.shape(w))  # (Q, R)
    rows = [{"storage": "float32", "bytes": 4 * int(np.size(w))},
            {"storage": f"{n_bits}-bit codes, one per uint8", "bytes": int(q.codes.astype(np.uint8).nbytes)},
            {"storage": f"{n_bits}-bit codes, packed", "bytes": int(packed.size)},
            {"storage": "packed + scale, zero point, shape", "bytes": int(quant.quantized_bytes(q))}]
    return {"rows": rows, "n_codes": int(q.codes.size), "packed": int(packed.size),
            "roundtrip": bool(np.array_equal(back, q.codes))}


def huffman_table(W: dict, *, bits, methods=("uniform_asym", "kmeans")) -> list[dict]:
    """Stored bits per weight of the whole network (side information included), packed against
    Huffman-coded codes, with the entropy bound, per quantiser and bit width (≥ 2).

    Rows ``{"quantiser", "key", "bits", "coding", "bits per weight", "bytes"}``.
    Taught in: 04_quantization
    """
    n_weights, rows = sum(w.size for w in W.values()), []
    for key in methods:
        for b in [b for b in bits if b >= 2]:
            qz = qm.quantize_weights(W, method=key, n_bits=b)
            side = sum(q.side_bytes for q in qz.values())
            for coding, n in (("packed", sum(q.bytes for q in qz.values())),
                              ("Huffman", sum(q.huffman_bytes() for q in qz.values())),
                              ("entropy bound", side + sum(quant.entropy_bits(q.codes) for q in qz.values()) / 8)):
                rows.append({"quantiser": qm.METHODS[key][0], "key": key, "bits": int(b), "coding": coding,
                             "bits per weight": qm.bits_per_weight(n, n_weights), "bytes": int(np.ceil(n))})
    return rows


def huffman_gain(rows: list[dict], *, n_bits: int) -> dict:
    """Quantiser key → share of the packed bytes Huffman coding saves at ``n_bits`` (rows of
    :func:`huffman_table`). Taught in: 04_quantization"""
    bpw = {(r["key"], r["coding"]): r["bits per weight"] for r in rows if r["bits"] == n_bits}
    return {k: 1 - bpw[(k, "Huffman")] / bpw[(k, "packed")] for k in dict.fromkeys(k for k, _ in bpw)}


def finetune_study(model, lesson, *, bits, epochs: int, sweep_rows=()) -> dict:
    """Fake-quantised fine-tuning at each of ``bits`` and a float32 control fine-tuned for the same epochs.

    Returns ``{"epochs", "rows", "float_finetuned_acc"}``; each row ``{"bits", "post-training",
    "fine-tuned", "bytes", "verdict", "interval", "matches_sweep"}``: ``verdict`` is fine-tuned vs
    post-training, paired over the test speakers; ``matches_sweep`` says the starting point equals the
    sweep's "uniform_sym_channel" model at those bits (None when the sweep lacks it).
    Taught in: 04_quantization
    """
    from thinlab.nn import compress, size_report

    ds, ptq = lesson.ds, {(r["method"], r["bits"]): r for r in sweep_rows}
    rows = []
    for b in bits:
        start = compress(model, method="quant", n_bits=b)
        start_hits, nbytes = lesson.test_hits(start), size_report(start).total_bytes
        p = ptq.get(("uniform_sym_channel", b))
        tuned, _ = qm.fake_quant_finetune(model, ds.X_train, ds.y_train, ds.X_val, ds.y_val, n_bits=b,
                                          epochs=epochs, seed=lesson.seed, device=lesson.device)
        tuned_hits = lesson.test_hits(tuned)
        vs = lesson.compare(tuned_hits, start_hits, a="fine-tuned", b="post-training")
        rows.append({"bits": int(b), "post-training": float(start_hits.mean()), "fine-tuned": float(tuned_hits.mean()),
                     "bytes": int(nbytes), "tuned_bytes": int(size_report(tuned).total_bytes), "verdict": vs.verdict,
                     "interval": [vs.low, vs.high],
                     "matches_sweep": None if p is None else bool(np.isclose(start_hits.mean(), p["accuracy"])
                                                                   and nbytes == p["bytes"])})
    control = copy.deepcopy(model)
    train.finetune(control, ds.X_train, ds.y_train, epochs=epochs, seed=lesson.seed, desc="float32 control",
                   device=lesson.device)
    return {"epochs": epochs, "rows": rows, "float_finetuned_acc": lesson.test_acc(control)}


def layer_evaluator(model, W: dict, layer: str, score):
    """A function Ŵ (Q, R) → ``score(model with only ``layer`` replaced by Ŵ)`` (one scratch copy,
    reused). Taught in: 04_quantization"""
    scratch = copy.deepcopy(model)
    return lambda w_hat: score(set_layer_weights(scratch, {**W, layer: w_hat}))


def explorer_rows(w, *, method: str, evaluate, bits=(2, 3, 4, 8)) -> list[dict]:
    """The bits explorer's numbers as plain calls: one layer ``w`` quantised by the lesson's quantiser
    ``method`` ("uniform", "omse", ...) at each of ``bits``: distinct levels, MSE, bytes and
    ``evaluate(Ŵ)``. Taught in: 04_quantization"""
    rows = []
    for b in bits:
        q = qm.quantize_layer(w, method=method, n_bits=b)
        rows.append({"bits": int(b), "distinct levels": int(len(np.unique(q.W_hat))),
                     "MSE": float(np.mean((np.asarray(w, np.float64) - q.W_hat) ** 2)), "bytes": int(q.bytes),
                     "val accuracy": float(evaluate(q.W_hat))})
    return rows
