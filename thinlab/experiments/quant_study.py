"""Lesson 04's experiments as tested functions: the int8 cast, the thesis's fixed-point table, the
uniform / k-means / OMSE / multi-bit comparisons on one layer, the whole-network sweep with paired
verdicts, packing and Huffman bytes, fake-quant fine-tuning, the bits explorer's plain rows, the
three models at a byte budget and the design challenge; also the sentences and results entries the
lesson prints and records from those numbers, and its closing summary (:func:`summary_lines`).

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
from thinlab.nn.methods import quantizers
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


def int8_cast_text(cast: dict, *, n_test: int, n_classes: int) -> str:
    """Lesson 04's two sentences on the int8 cast (from :func:`int8_cast_study`): how many weights round to
    0, how many distinct words the cast model predicts for ``n_test`` test clips against chance
    (1 / ``n_classes``), and why: the cast is W/F fixed point with F = 0, a step of 1.

    Taught in: 04_quantization
    """
    return (f"{cast['zero_share']:.2%} of the weights round to 0 (the largest |w| is {cast['max_abs']:.3f}); the int8-cast "
            f"model predicts {cast['n_predicted_words']} distinct word(s) for {n_test} test clips: accuracy "
            f"{cast['test_acc']:.3f}, chance is {1 / n_classes:.3f}.\n"
            "The cast is W/F fixed point with F = 0: a step of 1, far coarser than the weights: "
            f"{'every' if cast['max_abs'] < 0.5 else 'not every'} weight of this model is below 0.5 in magnitude. Trained "
            "weights usually are, the likely cause of the thesis's collapse too; the exact figures differ with model and data.")


def int8_cast_results(cast: dict, thesis: dict) -> dict:
    """The results entries of the int8 cast: ``"thesis"`` (the seed thesis's quoted figures ``thesis``, with
    no fixed-point table: only its two headline figures are available) and ``"int8_cast"`` (this run's
    ``test_acc``, ``zero_share``, ``n_predicted_words`` and ``bytes`` from :func:`int8_cast_study`).

    Taught in: 04_quantization
    """
    return {"thesis": {**thesis, "fixed_point_table": None,
                       "note": "only the thesis's two headline figures are available, not its fixed-point table"},
            "int8_cast": {k: cast[k] for k in ("test_acc", "zero_share", "n_predicted_words", "bytes")}}


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
    its paired verdict against float32 (``"vs_float32"``), its validation accuracy (``"val_accuracy"``) and
    per-clip test ``"hits"``, plus the int8 cast as one row at 8 bits when ``cast`` (from
    :func:`int8_cast_study`) is given.

    Taught in: 04_quantization
    """
    hits, vals = [], []

    def scored(m):
        hits.append(lesson.test_hits(m))
        vals.append(lesson.val_acc(m))
        return float(hits[-1].mean())

    rows = qm.sweep(model, scored, bits=bits)
    for r, h, v in zip(rows, hits, vals):
        r.update(vs_float32=lesson.compare(h, base_hits).verdict, val_accuracy=v, hits=h)
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
        if r["method"] in quantizers() and r["vs_float32"] != "worse":      # the int8 cast is not one
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


def sweep_results(rows: list[dict]) -> dict:
    """The results entries of the sweep (rows of :func:`sweep_study`): ``"sweep"``, one record per setting
    (method, bits, accuracy, bytes, relative error, verdict against float32), and ``"acc_vs_bits"``,
    method → {str(bits): test accuracy}, the int8 cast included. Taught in: 04_quantization"""
    return {"sweep": [{k: r[k] for k in ("method", "bits", "accuracy", "bytes", "relative_error", "vs_float32")}
                      for r in rows],
            "acc_vs_bits": {m: {str(r["bits"]): r["accuracy"] for r in rows if r["method"] == m}
                            for m in dict.fromkeys(r["method"] for r in rows)}}


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


def huffman_text(rows: list[dict], *, bits) -> str:
    """Lesson 04's Huffman sentences from :func:`huffman_table` rows (which must hold ``"uniform_asym"`` and
    ``"kmeans"``): at the middle bit width of ``bits`` that is at least 2, each quantiser's packed and
    Huffman bits per weight with the entropy bound, then the share Huffman saves on each
    (:func:`huffman_gain`) and, when k-means gains less, why. Taught in: 04_quantization"""
    mids = [b for b in bits if b >= 2]
    if not mids:
        raise ValueError(f"bits={list(bits)!r}: Huffman is tabulated from 2 bits up; give at least one such width")
    b_mid = mids[len(mids) // 2]
    hb = {(r["key"], r["coding"]): r["bits per weight"] for r in rows if r["bits"] == b_mid}
    lines = [f"{qm.METHODS[key][0]}, {b_mid} bits: packed {hb[(key, 'packed')]:.2f} bits/weight, Huffman "
             f"{hb[(key, 'Huffman')]:.2f}, entropy bound {hb[(key, 'entropy bound')]:.2f}"
             for key in ("uniform_asym", "kmeans")]
    gain = huffman_gain(rows, n_bits=b_mid)
    lines.append(f"at {b_mid} bits Huffman saves {gain['uniform_asym']:.0%} of the bytes on uniform codes and "
                 f"{gain['kmeans']:.0%} on k-means codes" + (
                     ": k-means spreads the weights more evenly over its levels (higher entropy), leaving less to "
                     "compress." if gain["kmeans"] < gain["uniform_asym"] else "."))
    return "\n".join(lines)


FINETUNE_REASONS = ("a few epochs at a small learning rate may not move the latent weights across a rounding step",
                    "fine-tuning on few training clips can overfit them as easily as it recovers accuracy",
                    "the float32 control shows how much of any gain is plain extra training")


def finetune_study(model, lesson, *, bits, epochs: int, sweep_rows=(), seeds=None) -> dict:
    """Fake-quantised fine-tuning at each of ``bits`` and a float32 control fine-tuned for the same epochs,
    once per fine-tuning seed in ``seeds`` (default: the lesson's seed); per-clip hits are averaged over
    the seeds before the paired comparison.

    Returns ``{"epochs", "seeds", "rows", "float_finetuned_acc"}``; each row ``{"bits", "post-training",
    "fine-tuned", "bytes", "verdict", "interval", "comparison", "sentence", "matches_sweep"}``:
    ``verdict`` is fine-tuned vs post-training, paired over the test speakers, and ``sentence`` says it
    in words (:func:`thinlab.teach.interpret`); ``matches_sweep`` says the starting point equals the
    sweep's "uniform_sym_channel" model at those bits (None when the sweep lacks it).
    Taught in: 04_quantization
    """
    from thinlab import teach
    from thinlab.nn import compress, size_report

    seeds = [lesson.seed] if seeds is None else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one fine-tuning seed, e.g. [0]")
    ds, ptq = lesson.ds, {(r["method"], r["bits"]): r for r in sweep_rows}
    rows = []
    for b in bits:
        start = compress(model, method="quant", n_bits=b)
        start_hits, nbytes = lesson.test_hits(start), size_report(start).total_bytes
        p = ptq.get(("uniform_sym_channel", b))
        tuned_hits, tuned_bytes = [], set()
        for s in seeds:
            tuned, _ = qm.fake_quant_finetune(model, ds.X_train, ds.y_train, ds.X_val, ds.y_val, n_bits=b,
                                              epochs=epochs, seed=s, device=lesson.device)
            tuned_hits.append(lesson.test_hits(tuned))
            tuned_bytes.add(int(size_report(tuned).total_bytes))
        hits = np.stack(tuned_hits)                                   # (seeds, N)
        vs = lesson.compare(hits, start_hits, a="fine-tuned", b="post-training")
        rows.append({"bits": int(b), "post-training": float(start_hits.mean()), "fine-tuned": float(hits.mean()),
                     "bytes": int(nbytes), "tuned_bytes": tuned_bytes.pop() if len(tuned_bytes) == 1 else None,
                     "verdict": vs.verdict, "interval": [vs.low, vs.high], "comparison": vs.as_dict(),
                     "sentence": teach.interpret(vs, expected="better", reasons=FINETUNE_REASONS,
                                                 claim=f"{b}-bit fake-quant fine-tuning ({len(seeds)} seed"
                                                       f"{'s' if len(seeds) > 1 else ''})"),
                     "matches_sweep": None if p is None else bool(np.isclose(start_hits.mean(), p["accuracy"])
                                                                   and nbytes == p["bytes"])})
    control = []
    for s in seeds:
        c = copy.deepcopy(model)
        train.finetune(c, ds.X_train, ds.y_train, epochs=epochs, seed=s, desc="float32 control", device=lesson.device)
        control.append(lesson.test_acc(c))
    return {"epochs": epochs, "seeds": seeds, "rows": rows, "float_finetuned_acc": float(np.mean(control))}


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


# ── the three models under the same quantisers ─────────────────────────────────────────────────────────

def model_sweep(model, lesson, *, name: str, bits, methods=None, rows=None) -> list[dict]:
    """Every registered post-training quantiser × bit width applied to **every** weight matrix of
    ``model`` (Linear, convolution and LSTM: :func:`quant_sweep.weight_tensors`), plus the float32
    model itself as one row (method ``"float32"``, 32 bits).

    Rows ``{"model", "method", "label", "bits", "accuracy", "val_accuracy", "bytes", "relative_error",
    "hits"}``: test accuracy (and per-clip ``hits`` for paired comparisons) on the test speakers,
    validation accuracy for choosing a setting without looking at the test clips, honest bytes of the
    whole model. ``rows``: a sweep already run on this model (:func:`sweep_study`: the DNN's, whose
    Linear layers are all its weight matrices) to reuse instead of sweeping again (its int8 cast left out).
    Taught in: 04_quantization
    """
    from thinlab.nn import size_report

    if rows is not None:
        rows = [{**r, "model": name} for r in rows if r["method"] in quantizers()]
    else:
        hits, vals = [], []

        def scored(m):
            hits.append(lesson.test_hits(m))
            vals.append(lesson.val_acc(m))
            return float(hits[-1].mean())

        rows = qm.sweep(model, scored, methods=methods, bits=bits, weights=qm.weight_tensors(model))
        for r, h, v in zip(rows, hits, vals):
            r.update(model=name, val_accuracy=v, hits=h)
    h0 = lesson.test_hits(model)
    return [{"model": name, "method": "float32", "label": "float32", "bits": 32, "accuracy": float(h0.mean()),
             "val_accuracy": lesson.val_acc(model), "bytes": int(size_report(model).total_bytes),
             "size_fraction": 1.0, "relative_error": 0.0, "hits": h0}] + rows


def budget_choice(rows: list[dict], budgets) -> list[dict]:
    """For each byte budget and each model in ``rows`` (from :func:`model_sweep`): the setting with the
    best **validation** accuracy among those that fit (bytes ≤ budget; ties: fewer bytes), and its test
    accuracy. A model with no setting that fits gets ``fits=False`` and its smallest size.

    Rows ``{"budget", "model", "fits", "setting", "method", "bits", "bytes", "val accuracy",
    "test accuracy", "smallest"}``. Taught in: 04_quantization
    """
    budgets = [int(b) for b in budgets]
    if not budgets or min(budgets) <= 0:
        raise ValueError(f"budgets={budgets!r}: give positive byte counts, e.g. [64_000, 256_000]")
    out = []
    for budget in budgets:
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = [r for r in rows if r["model"] == model]
            fit = [r for r in mine if r["bytes"] <= budget]
            best = max(fit, key=lambda r: (r["val_accuracy"], -r["bytes"])) if fit else None
            out.append({"budget": budget, "model": model, "fits": best is not None,
                        "setting": f"{best['label']}, {best['bits']} bit{'s' * (best['bits'] != 1)}" if best and best["method"] in quantizers()
                        else ("float32" if best else None),
                        "method": best and best["method"], "bits": best and best["bits"],
                        "bytes": best and best["bytes"], "val accuracy": best and best["val_accuracy"],
                        "test accuracy": best and best["accuracy"], "smallest": min(r["bytes"] for r in mine)})
    return out


def budget_table(choices: list[dict]) -> list[dict]:
    """One row per budget of :func:`budget_choice`, one column per model: its test accuracy with the
    chosen setting and its bytes, or "does not fit (smallest …)". Taught in: 04_quantization"""
    from thinlab import teach

    out = {}
    for c in choices:
        row = out.setdefault(c["budget"], {"budget": teach.human_bytes(c["budget"])})
        row[c["model"].upper()] = (f"{c['test accuracy']:.1%} ({c['setting']}, {teach.human_bytes(c['bytes'])})"
                                   if c["fits"] else f"does not fit (smallest {teach.human_bytes(c['smallest'])})")
    return list(out.values())


def seed_hits(lesson, name: str, *, method: str, bits: int, seeds, first=None):
    """Per-clip test hits (seeds, N) of model ``name`` trained with each of ``seeds`` (lesson 00's
    baseline recipe, cached) and stored with ``method`` at ``bits`` (``"float32"``: as trained).
    ``first``: the hits already measured for ``seeds[0]`` (skips that model). Taught in: 04_quantization"""
    out = []
    for i, s in enumerate(seeds):
        if i == 0 and first is not None:
            out.append(np.asarray(first, bool))
            continue
        m, _ = lesson.baseline(name, seed=int(s), progress=False, verbose=False)
        if method in quantizers():                                    # "float32": the model as trained
            m = qm.with_weights(m, qm.quantize_weights(qm.weight_tensors(m), method=method, n_bits=bits))
        out.append(lesson.test_hits(m))
    return np.stack(out)


REASONS = ("the setting of each model is chosen on the validation speakers, so its test ranking can differ",
           "with few test speakers, a handful of them can decide a close race",
           "each model's float32 accuracy already varies with the training seed")


def budget_winners(choices: list[dict], lesson, rows: list[dict], *, seeds) -> list[dict]:
    """Per budget of :func:`budget_choice`: among the models that fit (each at its validation-chosen
    setting, retrained per seed in ``seeds`` and stored with that setting; hits averaged per clip), the
    winner is the one with the highest mean test accuracy over the seeds (ties: the fewer bytes), the
    runner-up the next, and their speaker-aware paired comparison comes with a computed sentence
    (:func:`thinlab.teach.interpret`). Every fitting model is run on every seed, so a model behind on
    the first seed can still win; when the first seed alone would have named another model, the
    sentence says so.

    Rows ``{"budget", "winner", "runner_up", "fits", "comparison", "sentence", "n_seeds"}``.
    Taught in: 04_quantization
    """
    from thinlab import teach

    first = {(r["model"], r["method"], r["bits"]): r["hits"] for r in rows}
    seeds, cache, out = list(seeds), {}, []
    for budget in dict.fromkeys(c["budget"] for c in choices):
        fit = [c for c in choices if c["budget"] == budget and c["fits"]]
        row = {"budget": budget, "winner": None, "runner_up": None, "fits": [c["model"] for c in fit],
               "comparison": None, "n_seeds": len(seeds)}
        size = teach.human_bytes(budget)
        if not fit:
            row["sentence"] = f"At {size} no model fits, even at its fewest bits."
        elif len(fit) == 1:
            row["winner"] = fit[0]["model"]
            row["sentence"] = (f"At {size} only the {fit[0]['model'].upper()} fits ({fit[0]['setting']}, "
                               f"{teach.human_bytes(fit[0]['bytes'])}): test accuracy {fit[0]['test accuracy']:.3f}.")
        else:
            for c in fit:
                key = (c["model"], c["method"], c["bits"])
                if key not in cache:
                    cache[key] = seed_hits(lesson, c["model"], method=c["method"], bits=c["bits"], seeds=seeds,
                                           first=first.get(key))
            hits = {c["model"]: cache[(c["model"], c["method"], c["bits"])] for c in fit}
            ranked = sorted(fit, key=lambda c: (-float(np.mean(hits[c["model"]])), c["bytes"]))   # the seeds decide
            leader = max(fit, key=lambda c: c["test accuracy"])["model"]                         # the first seed's
            w, r = ranked[0]["model"], ranked[1]["model"]
            row["winner"], row["runner_up"] = w, r
            cmp = lesson.compare(hits[w], hits[r], a=w.upper(), b=r.upper())
            row["comparison"] = cmp.as_dict()
            row["sentence"] = (f"At {size} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}, each model at its "
                               "validation-chosen setting) " + teach.interpret(
                                   cmp, expected="better", claim=f"{w.upper()} against {r.upper()}")
                               + (f" (the first seed alone had put the {leader.upper()} first)" if leader != w else ""))
        out.append(row)
    return out


def winners_text(winners: list[dict]) -> str:
    """The sentence of each budget of :func:`budget_winners`, one per line, and, when some winner is not
    beyond the noise, a last line with the known reasons such a race can go either way
    (:data:`REASONS`). Taught in: 04_quantization"""
    lines = [w["sentence"] for w in winners]
    if any(w["comparison"] and w["comparison"]["verdict"] != "better" for w in winners):
        lines.append("Why such a race can go either way: " + "; ".join(REASONS) + ".")
    return "\n".join(lines)


def lstm_fixed_point_table(model, lesson, *, bits) -> list[dict]:
    """The seed thesis's fixed-point table on a recurrent model: every weight matrix (the LSTM's input
    and recurrent weights and its dense layers, :func:`quant_sweep.weight_tensors`) at each word
    length with its own best F; biases and input statistics stay float32 and are counted.

    Rows as :func:`fixed_point_table` (``best_F``: matrix → F). Taught in: 04_quantization
    """
    base_hits = lesson.test_hits(model)
    return fixed_point_table(model, qm.weight_tensors(model), lesson, bits=bits, base_hits=base_hits)


# ── the design challenge: bits per layer ───────────────────────────────────────────────────────────────

CHALLENGE_METHOD = "quant"      # symmetric, one scale per output channel; size_report counts it


def apply_bit_plan(model, plan: dict):
    """A copy of ``model`` whose layers in ``plan`` (layer name → bits) are stored by the registry's
    ``"quant"`` method (symmetric, one scale per output channel) at their own bits; layers left out
    stay float32. ``size_report`` of the result counts every stored byte. Taught in: 04_quantization"""
    import copy as _copy

    from thinlab.nn import compress, compressible_layers, methods

    if not isinstance(plan, dict):
        raise TypeError(f"plan must be a dict layer → bits, e.g. {{'hidden.0': 2, 'out': 8}}, got {type(plan).__name__}")
    layers = compressible_layers(model)
    unknown = [k for k in plan if k not in layers]
    if unknown:
        raise KeyError(f"plan names {unknown}, which are not Linear layers of this model; choose from {layers}")
    m = methods.get(CHALLENGE_METHOD)
    groups: dict[int, list] = {}
    for layer, b in plan.items():
        groups.setdefault(m.check_bits(b), []).append(layer)
    out = _copy.deepcopy(model)
    for b, names in sorted(groups.items()):
        out = compress(out, method=CHALLENGE_METHOD, n_bits=b, layers=names)
    return out


def layer_scan(model, lesson, *, bits) -> list[dict]:
    """Sensitivity scan: each Linear layer alone stored at each of ``bits`` (the challenge's quantiser,
    every other layer float32), scored on the **validation** speakers.

    Rows ``{"layer", "bits", "val accuracy", "layer bytes", "bytes saved"}``: ``layer bytes`` is that
    weight as stored (codes + scales), ``bytes saved`` its float32 bytes minus that.
    Taught in: 04_quantization
    """
    from thinlab.nn import compressible_layers, size_report

    dense = {r.name: r.bytes for r in size_report(model).layers}
    total = sum(dense.values())
    rows = []
    for layer in compressible_layers(model):
        for b in bits:
            q = apply_bit_plan(model, {layer: b})
            stored = size_report(q).total_bytes - (total - dense[f"{layer}.weight"])
            rows.append({"layer": layer, "bits": int(b), "val accuracy": lesson.val_acc(q), "layer bytes": int(stored),
                         "bytes saved": int(dense[f"{layer}.weight"] - stored)})
    return rows


def plan_bytes(scan: list[dict], plan: dict, *, total_bytes: int) -> int:
    """Bytes of the whole model under ``plan`` from the scan's per-layer bytes (``total_bytes``: the
    float32 model). Taught in: 04_quantization"""
    saved = {(r["layer"], r["bits"]): r["bytes saved"] for r in scan}
    missing = [(l, b) for l, b in plan.items() if (l, b) not in saved]
    if missing:
        raise KeyError(f"the scan has no row for {missing}; scan those bits or choose from {sorted(set(saved))}")
    return int(total_bytes - sum(saved[(l, b)] for l, b in plan.items()))


def reference_plan(scan: list[dict], *, size_limit: int, total_bytes: int) -> dict:
    """A bits-per-layer plan under ``size_limit`` derived from the scan alone: start every layer at its
    most scanned bits, then, while the model is too big, lower the layer whose next step down costs the
    least validation accuracy per byte it saves. Taught in: 04_quantization"""
    by = {(r["layer"], r["bits"]): r for r in scan}
    options = {l: sorted({b for (ll, b) in by if ll == l}, reverse=True) for l in dict.fromkeys(r["layer"] for r in scan)}
    plan = {l: bs[0] for l, bs in options.items()}
    while plan_bytes(scan, plan, total_bytes=total_bytes) > size_limit:
        steps = []
        for l, b in plan.items():
            lower = [x for x in options[l] if x < b]
            if lower:
                cur, nxt = by[(l, b)], by[(l, lower[0])]
                saved = nxt["bytes saved"] - cur["bytes saved"]
                steps.append(((cur["val accuracy"] - nxt["val accuracy"]) / max(saved, 1), -saved, l, lower[0]))
        if not steps:
            raise ValueError(f"size_limit={size_limit:,} bytes is below what the scan's fewest bits reach "
                             f"({plan_bytes(scan, plan, total_bytes=total_bytes):,}); raise it or scan fewer bits")
        _, _, l, b = min(steps)
        plan[l] = b
    return plan


def challenge_targets(*, base_acc: float, base_bytes: int, factor: float, drop: float, reference_acc: float) -> dict:
    """The challenge's size limit (float32 bytes / ``factor``) and accuracy bar: float32 accuracy minus
    ``drop``, lowered to the reference plan's accuracy when that plan (from the scan) falls short, so the
    challenge is always feasible. Taught in: 04_quantization"""
    if not factor > 1 or not 0 <= drop < 1:
        raise ValueError(f"factor={factor!r} must be > 1 and drop={drop!r} in [0, 1)")
    wanted = base_acc - drop
    return {"size_limit": int(base_bytes / factor), "accuracy_bar": float(min(wanted, reference_acc)),
            "bar_lowered": bool(reference_acc < wanted), "wanted_bar": float(wanted)}


def challenge_text(target: dict, *, base_acc: float, factor: float, drop: float) -> str:
    """The challenge's size limit and accuracy bar in words (``target`` from :func:`challenge_targets`,
    whose accuracies are the validation speakers': the test speakers only report the chosen plan), saying
    so when the bar had to be lowered to what the scan's plan reaches. Taught in: 04_quantization"""
    from thinlab import teach

    return (f"size limit {teach.human_bytes(target['size_limit'])} (float32 / {factor}); accuracy bar "
            f"{target['accuracy_bar']:.3f} on the validation speakers" + (
                f": float32 − {drop} would be {target['wanted_bar']:.3f}, which the scan's plan does not reach in "
                "this run, so the bar is what that plan reaches" if target["bar_lowered"] else
                f" (float32 {base_acc:.3f} − {drop})"))


# ── the summary ────────────────────────────────────────────────────────────────────────────────────────

def summary_lines(*, base_acc: float, se: float, base_bytes: int, int8_acc: float, thesis: dict,
                  fixed_rows: list[dict], fewest: dict, finetune: dict, lstm_fixed: list[dict],
                  winners: list[dict], challenge: str) -> list[str]:
    """Lesson 04's closing summary, one line per finding, all from this run's numbers: the float32 DNN,
    the int8 cast beside the thesis's quoted figures and 8-bit fixed point with the best F
    (``fixed_rows``: :func:`fixed_point_table`), the fixed-point accuracies, the fewest bits not worse than
    float32 (:func:`fewest_bits`), fake-quant fine-tuning (:func:`finetune_study`), the LSTM's fixed-point
    accuracies (:func:`lstm_fixed_point_table`), the most accurate model per budget
    (:func:`budget_winners`) and the design challenge's verdict (``challenge``, its text).

    Taught in: 04_quantization
    """
    from thinlab import teach

    f8 = next((r for r in fixed_rows if r["bits"] == 8), None)
    return [
        f"baseline DNN: test accuracy {base_acc:.3f} ± {se:.3f}, {base_bytes:,} bytes",
        f"int8 cast (no scale): {int8_acc:.3f} (seed thesis, quoted: {thesis['float_acc']:.3f} → "
        f"{thesis['int8_cast_acc']:.3f})" + (f"; 8-bit fixed point with the best F: {f8['test_acc']:.3f}" if f8 else ""),
        "fixed point, best F: " + ", ".join(f"{r['bits']} bits {r['test_acc']:.3f}" for r in fixed_rows),
        "fewest bits not worse than float32: " + (", ".join(f"{k} {v}" for k, v in fewest.items()) or "none"),
        "fake-quant fine-tuning: " + ", ".join(f"{r['bits']} bits {r['post-training']:.3f} → {r['fine-tuned']:.3f}"
                                               for r in finetune["rows"])
        + f" (float32 control {finetune['float_finetuned_acc']:.3f})",
        "LSTM fixed point, best F: " + ", ".join(f"{r['bits']} bits {r['test_acc']:.3f}" for r in lstm_fixed),
        "most accurate model per budget in this run: " + "; ".join(
            f"{teach.human_bytes(w['budget'])} {(w['winner'] or 'none').upper()}" + (
                f" ({'beyond noise' if w['comparison']['verdict'] == 'better' else 'within noise'} of "
                f"{w['runner_up'].upper()})" if w["comparison"] else "") for w in winners),
        challenge]
