"""Lesson 06's study around the pipeline: the stage table, the forum's ranges and the targets, the
students, every method's Pareto points, and the save / reload / timing round trip.

The stages themselves are :mod:`thinlab.experiments.pipeline`; this module runs them one lesson cell
at a time (:class:`StageTable`), turns the results into the rows the lesson prints and charts, and
holds the verdicts (forum ranges, the two targets) as data, so tests can check them.

Taught in: 06_pipeline
"""
from __future__ import annotations

import numpy as np
import torch

from thinlab import stats, train
from thinlab.experiments import pipeline as pl
from thinlab.train import finetune

#: what the forum post expected from each stage (quoted expectations, not measurements)
FORUM = {"prune": (2, 3), "factorize": (3, 5), "quantize": (5, 8), "total": (30, 120)}
#: (factor at least, points lost at most)
TARGETS = [(50, 2.0), (100, 5.0)]
#: the Pareto chart's families: registry groups merged so that every family has its own colour and shape
GROUP_FAMILY = {"low rank": "factors, hashing", "DeepThin": "factors, hashing", "hashing": "factors, hashing",
                "quantisation": "DNN quantised"}
BASELINE_FAMILY = "baselines (float32)"
NARROW_FAMILY = "narrow DNN, trained"
PIPELINE_FAMILY = "pipeline (DNN)"
#: "what should I ship?": the byte budget of lesson 06's question (decimal KB, as every byte count printed)
SHIP_BYTES = 64_000
#: bits at which lesson 00's CNN and LSTM are quantised post-training for the Pareto chart
BASELINE_BITS = (8, 4)
#: the capstone: points the student's pipeline may lose against the teacher (the forum's second target)
CAPSTONE_LOSS = 5.0


def eval_set(ds, splits=("test",)) -> dict:
    """The clips every number is scored on: the splits ``splits`` of ``ds``, concatenated.

    Returns
    -------
    dict with ``X`` (N, frames, n_mels) float32, ``y`` (N,), ``speakers`` (N,), ``files`` (N,) and
    ``splits`` (the names, as given).

    Taught in: 06_pipeline
    """
    splits = list(splits)
    if not splits:
        raise ValueError("splits=[]: name at least one split, e.g. ['test']")
    bad = [s for s in splits if not hasattr(ds, f"y_{s}")]
    if bad:
        raise ValueError(f"splits {bad} are not in the data set; use 'train', 'val' or 'test'")
    cat = lambda part: np.concatenate([np.asarray(getattr(ds, f"{part}_{s}")) for s in splits])  # noqa: E731
    return {"X": cat("X").astype(np.float32), "y": cat("y"), "speakers": cat("speakers"), "files": cat("files"),
            "splits": splits}


def teacher_record(teacher, ev: dict) -> dict:
    """The teacher's bytes, accuracy (with its speaker-bootstrap interval) and layer shapes on ``ev``.

    ``widths`` are the hidden layers' output widths, ``in_features`` the first layer's input size,
    ``n_classes`` the output size and ``first_share`` the first hidden layer's share of all Linear
    weights (the largest one, in lesson 00's DNN).

    Taught in: 06_pipeline
    """
    iv = stats.accuracy_interval(stats.correct(teacher, ev["X"], ev["y"]), ev["speakers"])
    lin = [*teacher.hidden, teacher.out]
    n_w = [m.in_features * m.out_features for m in lin]
    return {"bytes": pl.model_bytes(teacher), "acc": iv.accuracy, "se": iv.se, "interval": [iv.low, iv.high],
            "text": iv.text(), "widths": [m.out_features for m in teacher.hidden],
            "in_features": lin[0].in_features, "n_classes": teacher.out.out_features,
            "first_share": n_w[0] / sum(n_w)}


class StageTable:
    """The pipeline run one stage per lesson cell, on two tracks: post-training and fine-tuned.

    ``add(stage, step)`` applies ``step`` (a model → model function, e.g.
    ``lambda m: pl.stage_prune(m, keep=K)``) to the previous stage's post-training model and to its
    fine-tuned model, fine-tunes the second for ``finetune_epochs``, scores both on ``ev`` and appends
    a row ``{stage, bytes, acc_post, acc_ft}`` to ``rows``. ``post`` / ``ft`` map each stage to its model;
    ``hits`` maps each stage to its fine-tuned model's per-clip correctness on ``ev`` (bool (N,), the
    mean of which is ``acc_ft``), for paired comparisons (:func:`run_points` ``hits=``).

    Taught in: 06_pipeline
    """

    def __init__(self, teacher, ev: dict, X_train, y_train, *, finetune_epochs: int, seed: int = 0, device=None):
        self.ev, self.X_train, self.y_train = ev, X_train, y_train
        self.finetune_epochs, self.seed, self.device = finetune_epochs, seed, device
        hits = stats.correct(teacher, ev["X"], ev["y"])
        acc = float(hits.mean())
        self.rows = [{"stage": "dense", "bytes": pl.model_bytes(teacher), "acc_post": acc, "acc_ft": acc}]
        self.post, self.ft, self.hits = {"dense": teacher}, {"dense": teacher}, {"dense": hits}

    @property
    def final(self):
        """The last stage's fine-tuned model."""
        return self.ft[self.rows[-1]["stage"]]

    def add(self, stage: str, step) -> dict:
        """Run one stage on both tracks (see the class); print and return its row."""
        if stage in self.post:
            raise ValueError(f"stage {stage!r} is already in the table; name each stage once")
        prev = self.rows[-1]
        m_post, m_ft = step(self.post[prev["stage"]]), step(self.ft[prev["stage"]])
        finetune(m_ft, self.X_train, self.y_train, epochs=self.finetune_epochs, seed=self.seed, progress=False,
                 desc=stage, device=self.device)
        nbytes = pl.model_bytes(m_post)
        if nbytes != pl.model_bytes(m_ft):
            raise RuntimeError(f"stage {stage}: the two tracks have different structures, hence different bytes")
        X, y = self.ev["X"], self.ev["y"]
        hits = stats.correct(m_ft, X, y)
        row = {"stage": stage, "bytes": nbytes, "acc_post": pl.accuracy(m_post, X, y), "acc_ft": float(hits.mean())}
        self.rows.append(row)
        self.post[stage], self.ft[stage], self.hits[stage] = m_post, m_ft, hits
        print(f"{stage:>9}: {nbytes:>10,} bytes ({self.rows[0]['bytes'] / nbytes:6.1f}x in all, "
              f"{prev['bytes'] / nbytes:4.1f}x this stage); accuracy post-training {row['acc_post']:.3f}, "
              f"fine-tuned {row['acc_ft']:.3f}")
        return row


def stage_table(rows, factors) -> list[dict]:
    """``rows`` (dense first) with ``stage_factor`` (from ``factors``, one per stage after the first) and
    ``factor`` (dense bytes / bytes) added; raises when ``factors`` are not the rows' byte ratios.

    Taught in: 06_pipeline
    """
    rows = [dict(r) for r in rows]
    factors = [float(f) for f in factors]
    if len(factors) != len(rows) - 1:
        raise ValueError(f"{len(factors)} factors for {len(rows)} rows: expected one per stage after the dense model")
    want = [a["bytes"] / b["bytes"] for a, b in zip(rows, rows[1:])]
    if not np.allclose(factors, want, rtol=1e-9):
        raise ValueError(f"factors {np.round(factors, 3).tolist()} are not bytes before / bytes after "
                         f"({np.round(want, 3).tolist()})")
    for r, f in zip(rows, [1.0, *factors]):
        r["stage_factor"], r["factor"] = f, rows[0]["bytes"] / r["bytes"]
    return rows


def place_in_range(value: float, lo: float, hi: float, *, digits: int) -> tuple[str, str]:
    """Where ``value``, shown with ``digits`` decimals, lies against the range [lo, hi] (both ends included).

    Returns ``(where, words)``: ``where`` is "inside", "below" or "above"; ``words`` names the place,
    e.g. "at the top of its range" when the shown value equals ``hi``. The shown (rounded) value decides,
    so the sentence never contradicts the number printed beside it: 3.002 shown as "3.00" is at the top
    of 2-3, not above it.

    Taught in: 06_pipeline
    """
    if not lo <= hi:
        raise ValueError(f"range ({lo}, {hi}): expected lo <= hi")
    shown = round(float(value), digits)
    if shown < lo:
        return "below", "below its range"
    if shown > hi:
        return "above", "above its range"
    if shown == hi:
        return "inside", "inside its range, at the top" if lo < hi else "inside its range"
    if shown == lo:
        return "inside", "inside its range, at the bottom"
    return "inside", "inside its range"


def forum_check(rows, forum: dict = FORUM) -> list[dict]:
    """Each stage's measured factor (and the total) against the forum's expected range ``(lo, hi)``.

    ``rows`` come from :func:`stage_table`. One dict per entry of ``forum`` that was measured:
    ``stage``, ``expected`` [lo, hi], ``measured``, ``shown`` (as printed), ``where`` ("inside", "above" or
    "below", from :func:`place_in_range` on the printed value: the range's ends count as inside) and ``text``.

    Taught in: 06_pipeline
    """
    got = {r["stage"]: r["stage_factor"] for r in rows[1:]}
    got["total"] = rows[0]["bytes"] / rows[-1]["bytes"]
    out = []
    for stage, (lo, hi) in forum.items():
        if stage not in got:
            continue
        g = got[stage]
        digits = 2 if g < 10 else 1
        where, words = place_in_range(g, lo, hi, digits=digits)
        out.append({"stage": stage, "expected": [lo, hi], "measured": g, "shown": round(g, digits), "where": where,
                    "text": f"{stage:>9}: the forum post expected {lo}-{hi}x, we measured {g:.{digits}f}x ({words})"})
    return out


def waterfall_rows(rows) -> list[dict]:
    """Rows for :func:`thinlab.charts.waterfall`: ``stage`` ("0 dense", "1 prune", ...) and ``bytes``.

    Taught in: 06_pipeline
    """
    return [{"stage": f"{i} {r['stage']}", "bytes": r["bytes"]} for i, r in enumerate(rows)]


def accuracy_rows(rows) -> list[dict]:
    """Long rows ``stage``, ``track`` ("post-training" / "fine-tuned"), ``accuracy`` for a line chart.

    Taught in: 06_pipeline
    """
    return [{"stage": f"{i} {r['stage']}", "track": track, "accuracy": r[key]} for i, r in enumerate(rows)
            for track, key in (("post-training", "acc_post"), ("fine-tuned", "acc_ft"))]


def target_verdicts(total: float, lost: float, targets=TARGETS) -> list[dict]:
    """Each target ``(factor at least, points lost at most)`` against the measured ``total`` factor and
    ``lost`` points: ``factor_at_least``, ``lost_at_most``, ``met`` and a one-line ``text`` saying by how
    much a target is missed.

    Taught in: 06_pipeline
    """
    out = []
    for need_x, max_lost in targets:
        ok = total >= need_x and lost <= max_lost
        short = [] if total >= need_x else [f"the factor is {need_x / total:.2f}x short"]
        short += [] if lost <= max_lost else [f"{lost - max_lost:.1f} points too many are lost"]
        text = (f"target ≥ {need_x}x with ≤ {max_lost:g} points lost: {'MET' if ok else 'not met'} — we have "
                f"{total:.1f}x and {lost:+.1f} points lost" + (f" ({'; '.join(short)})" if short else ""))
        out.append({"factor_at_least": need_x, "lost_at_most": max_lost, "met": bool(ok), "text": text})
    return out


def targets_study(rows, hits_final, hits_teacher, speakers, *, n_classes: int, targets=TARGETS) -> tuple[dict, list]:
    """The final model against the teacher and the targets: ``(record, lines)``.

    ``rows`` from :func:`stage_table` (dense first, final last); ``hits_*`` per-clip correctness on the
    same clips, ``speakers`` their speakers. ``record``: ``lost_points`` (fine-tuned track),
    ``lost_points_post_training``, ``noise_points`` (half-width of the paired interval), ``vs_teacher``,
    ``near_chance`` (teacher below twice chance) and ``verdicts`` (:func:`target_verdicts`); ``lines``
    are the sentences the lesson prints.

    Taught in: 06_pipeline
    """
    acc0, last = rows[0]["acc_ft"], rows[-1]
    total = rows[0]["bytes"] / last["bytes"]
    lost, lost_post = 100 * (acc0 - last["acc_ft"]), 100 * (acc0 - last["acc_post"])
    vs = stats.paired_compare(hits_final, hits_teacher, speakers, a="compressed", b="teacher")
    verdicts = target_verdicts(total, lost, targets)
    lines = [v["text"] for v in verdicts]
    lines.append(f"post-training only (no fine-tuning anywhere) the same {total:.1f}x loses {lost_post:+.1f} points")
    said = {"within noise": "the loss is within noise", "worse": "the loss is larger than noise",
            "better": "the compressed model is better beyond noise"}[vs.verdict]
    lines.append(f"compressed vs teacher on the same {len(hits_final)} clips: paired interval {vs.bounds_text()} points over {vs.n_speakers} speakers: {said}")
    chance = 1 / n_classes
    near = bool(acc0 < 2 * chance)
    if near:
        lines.append(f"CAUTION: the teacher scores {acc0:.3f}, close to chance ({chance:.2f}); at this size (FAST mode "
                     "or synthetic data) the verdicts above say nothing about compression. "
                     "Run full size on real speech.")
    if lost < 0:
        lines.append("negative loss: the compressed model scores higher than the teacher on these clips"
                     + ("; within the noise, so this is no evidence that compressing helped"
                        if vs.verdict == "within noise" else ", by more than the noise"))
    record = {"near_chance": near, "lost_points": lost, "lost_points_post_training": lost_post,
              "noise_points": 100 * (vs.high - vs.low) / 2, "vs_teacher": vs.as_dict(), "verdicts": verdicts}
    return record, lines


def student_like(teacher, *, keep, method: str, size_fraction: float, n_bits: int, seed: int = 0):
    """A fresh model with the pipeline's final structure (``keep`` units, ``method`` factors at
    ``size_fraction``, ``n_bits`` codes), its weights freshly initialised (seeded) for training from scratch.

    Taught in: 06_pipeline
    """
    train.seed_everything(seed)
    m = pl.stage_prune(teacher, keep=keep)      # the structure only: the factors below start random
    m = pl.stage_factorize(m, method=method, size_fraction=size_fraction, init="random", seed=seed)
    return pl.stage_quantize(m, n_bits=n_bits)


def distillation_study(teacher, ds, ev: dict, *, keep, method: str, size_fraction: float, n_bits: int, epochs: int,
                       T: float, alpha: float, seeds=(0,), device=None) -> tuple[dict, list, dict]:
    """Students of the final structure (:func:`student_like`) trained from scratch for ``epochs``, once per
    seed of ``seeds``: alone on the labels and distilled from ``teacher``
    (:func:`thinlab.experiments.pipeline.distill`). The two students of one seed start from the same weights.

    Returns ``(record, history_rows, models)``: ``record`` has ``bytes``, ``seeds``, ``acc_alone`` and
    ``acc_distilled`` (on ``ev``, the mean over seeds), ``per_seed`` (each seed's two accuracies),
    ``epochs``, ``T``, ``alpha``, ``n_speakers`` and ``vs_alone`` (the paired speaker-bootstrap verdict,
    distilled vs alone, each clip's correctness averaged over the seeds); ``history_rows`` are every run's
    epochs with a ``run`` field ("alone, seed 0", ...); ``models`` maps "alone" / "distilled" to the
    students of the first seed.

    Taught in: 06_pipeline
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r}: expected one or more distinct seeds, e.g. [0, 1, 2]")
    hits, hist, models, per_seed = {"alone": [], "distilled": []}, [], {}, []
    for seed in seeds:
        kw = dict(keep=keep, method=method, size_fraction=size_fraction, n_bits=n_bits, seed=seed)
        alone, distilled = student_like(teacher, **kw), student_like(teacher, **kw)
        h_alone = train.fit(alone, ds.X_train, ds.y_train, ds.X_val, ds.y_val, epochs=epochs, seed=seed,
                            progress=False, desc="alone", device=device)
        h_dist = pl.distill(distilled, teacher, ds.X_train, ds.y_train, ds.X_val, ds.y_val, epochs=epochs, T=T,
                            alpha=alpha, seed=seed, device=device)
        row = {"seed": seed}
        for name, m, h in (("alone", alone, h_alone), ("distilled", distilled, h_dist)):
            c = stats.correct(m, ev["X"], ev["y"])
            hits[name].append(c)
            row[name] = float(c.mean())
            hist += [dict(r, run=f"{name}, seed {seed}") for r in h.rows()]
            models.setdefault(name, m)
        per_seed.append(row)
    vs = stats.paired_compare(np.stack(hits["distilled"]), np.stack(hits["alone"]), ev["speakers"], a="distilled",
                              b="alone")
    record = {"bytes": pl.model_bytes(models["distilled"]), "seeds": seeds, "acc_alone": vs.acc_b,
              "acc_distilled": vs.acc_a, "per_seed": per_seed, "epochs": epochs, "T": T, "alpha": alpha,
              "n_speakers": vs.n_speakers, "vs_alone": vs.as_dict()}
    return record, hist, models


def distillation_reasons(record: dict, teacher_acc: float) -> list[str]:
    """The known reasons distillation can help or not, each with this run's numbers (for
    :func:`thinlab.teach.interpret`): temperature and weight, the teacher's lead over the student,
    the training length, the student's capacity, and the number of test speakers.

    Taught in: 06_pipeline
    """
    lead = 100 * (teacher_acc - record["acc_alone"])
    if lead < 0:
        lead_words = (f"the teacher ({teacher_acc:.3f}) scores {-lead:.1f} points below the student trained alone, so "
                      "it teaches its own mistakes")
    elif lead < 5:
        lead_words = (f"the teacher ({teacher_acc:.3f}) is only {lead:.1f} points above the student trained alone, so "
                      "its soft targets have little to add")
    else:
        lead_words = f"the teacher ({teacher_acc:.3f}) leads the student trained alone by {lead:.1f} points"
    return [f"T = {record['T']:g} and alpha = {record['alpha']:g} were set, not tuned: another temperature or a "
            "different weight of the soft term can change the outcome",
            lead_words,
            f"each student trained {record['epochs']} epochs from scratch; soft targets often pay off only with "
            "longer training",
            f"the student is the pipeline's final structure ({record['bytes']:,} bytes): its capacity, not its "
            "teacher, may be the limit",
            f"{len(record['seeds'])} seed(s) and {record['n_speakers']} test speakers: a difference of a few points "
            "is hard to resolve"]


def method_points(teacher, ds, ev: dict, *, methods, fractions, finetune_epochs: int, epochs: int, seed: int = 0,
                  device=None) -> list[dict]:
    """One Pareto point per (method, size fraction): ``method``, ``bytes`` (whole model), ``acc`` (on ``ev``),
    ``detail``.

    A method of the registry (:func:`thinlab.nn.methods.names`) compresses the teacher's hidden layers
    with :func:`thinlab.nn.compress` and is fine-tuned ``finetune_epochs``; any other name (``"narrow"``)
    is trained from scratch for ``epochs`` by :func:`thinlab.experiments.compare.train_compressed`.

    Taught in: 06_pipeline
    """
    from thinlab.experiments import compare
    from thinlab.nn import compress, methods as registry

    known = set(registry.names())
    hidden = pl.hidden_layers(teacher)
    points = []
    for method in methods:
        for f in fractions:
            if method not in known:       # a model trained from scratch at this size (lesson 03's "same size")
                r = compare.train_compressed(ds, method=method, size_fraction=f, seed=seed, epochs=epochs,
                                             eval_splits=ev["splits"], device=device)
                d = r["detail"] or {}
                detail = f"width {d['width']}" if "width" in d else f"size_fraction {f}"
                points.append({"method": method, "bytes": int(r["total_bytes"]), "acc": r["acc"], "detail": detail,
                               "family": NARROW_FAMILY})
                continue
            m = compress(teacher, method=method, size_fraction=f, layers=hidden)
            finetune(m, ds.X_train, ds.y_train, epochs=finetune_epochs, seed=seed, progress=False, desc=method,
                     device=device)
            points.append({"method": method, "bytes": pl.model_bytes(m), "acc": pl.accuracy(m, ev["X"], ev["y"]),
                           "detail": f"size_fraction {f}", "family": family_of(method)})
    return points


def quant_points(teacher, ev: dict, *, methods, bits) -> list[dict]:
    """One Pareto point per (quantiser, bits): every Linear layer quantised post-training
    (:func:`thinlab.experiments.quant_sweep.sweep`), named ``"quant: <method>"``.

    Taught in: 06_pipeline
    """
    from thinlab.experiments import quant_sweep

    rows = quant_sweep.sweep(teacher, lambda m: pl.accuracy(m, ev["X"], ev["y"]), methods=methods, bits=bits)
    return [{"method": f"quant: {r['method']}", "bytes": r["bytes"], "acc": r["accuracy"],
             "detail": f"{r['bits']} bit{'s' * (r['bits'] != 1)}", "family": family_of(r["method"])}
            for r in rows]


def run_points(rows, students: dict | None = None, *, hits: dict | None = None) -> list[dict]:
    """Pareto points of the dense teacher (``"baseline: dnn"``), each fine-tuned pipeline stage (``rows`` from
    :func:`stage_table`) and the two students (``students``: the record of :func:`distillation_study`).

    ``hits``: stage → per-clip correctness of its fine-tuned model on the evaluation clips
    (:attr:`StageTable.hits`); each point of a stage in it carries those as ``hits``, so
    :func:`ship_answer` can compare it paired with another point.

    Taught in: 06_pipeline
    """
    hits = hits or {}
    with_hits = lambda r: {"hits": np.asarray(hits[r["stage"]])} if r["stage"] in hits else {}   # noqa: E731
    pts = [{"method": "baseline: dnn", "bytes": rows[0]["bytes"], "acc": rows[0]["acc_ft"], "detail": "float32, teacher",
            "family": BASELINE_FAMILY, **with_hits(rows[0])}]
    pts += [{"method": "pipeline", "bytes": r["bytes"], "acc": r["acc_ft"], "detail": r["stage"],
             "family": PIPELINE_FAMILY, **with_hits(r)} for r in rows[1:]]
    if students:
        pts += [{"method": name, "bytes": students["bytes"], "acc": students[f"acc_{name}"],
                 "detail": f"student, mean of {len(students.get('seeds', [0]))} seed(s)", "family": "students (DNN)"}
                for name in ("distilled", "alone")]
    return pts


def quantize_all_weights(model, *, method: str = "uniform_sym_channel", n_bits: int) -> tuple[object, int]:
    """Post-training quantisation of every weight matrix of any model (Linear, Conv, LSTM gates) with
    :mod:`thinlab.experiments.quant_sweep`: :func:`~thinlab.experiments.quant_sweep.weight_tensors` (every
    float parameter of ≥ 2 dimensions as W (Q, R) = (in, out)), quantised by the registered quantiser
    ``method`` (:func:`~thinlab.experiments.quant_sweep.quantize_weights`, with its rules: a codebook
    quantiser leaves a W no larger than its codebook in float32) and written back as dequantised values
    into a CPU copy (:func:`~thinlab.experiments.quant_sweep.with_weights`).

    Returns ``(copy, bytes)``: :func:`~thinlab.experiments.quant_sweep.model_bytes`, i.e. the stored bytes
    of the quantised weights (their kernels' formulas) plus every other parameter and buffer densely.

    Taught in: 06_pipeline
    """
    from thinlab.experiments import quant_sweep

    weights = quant_sweep.weight_tensors(model)
    if not weights:
        raise ValueError(f"{type(model).__name__} has no weight matrix (a float parameter of ≥ 2 dimensions) to quantise")
    qz = quant_sweep.quantize_weights(weights, method=method, n_bits=n_bits)
    return quant_sweep.with_weights(model, qz).cpu(), int(quant_sweep.model_bytes(model, qz))


def baseline_points(models: dict, ev: dict, *, bits=BASELINE_BITS, method: str = "uniform_sym_channel") -> list[dict]:
    """Pareto points of lesson 00's other baselines (``models``: name → trained model, e.g. the CNN and
    the LSTM): each as trained (float32, ``"baseline: <name>"``) and post-training quantised at each of
    ``bits`` with :func:`quantize_all_weights` (``"baseline: <name> quantised"``). Each point carries
    ``hits``, its per-clip correctness on ``ev`` (``acc`` is their mean), for :func:`ship_answer`.

    Taught in: 06_pipeline
    """
    pts = []
    for name, model in models.items():
        hits = stats.correct(model, ev["X"], ev["y"])
        pts.append({"method": f"baseline: {name}", "bytes": pl.model_bytes(model), "acc": float(hits.mean()),
                    "detail": "float32", "family": BASELINE_FAMILY, "hits": hits})
        for b in bits:
            q, nbytes = quantize_all_weights(model, method=method, n_bits=b)
            hits = stats.correct(q, ev["X"], ev["y"])
            pts.append({"method": f"baseline: {name} quantised", "bytes": nbytes, "acc": float(hits.mean()),
                        "detail": f"{b} bits, post-training", "family": "baselines, quantised", "hits": hits})
    return pts


def without_hits(points) -> list[dict]:
    """Copies of ``points`` without their per-clip ``hits`` (for a results file or a chart). Taught in: 06_pipeline"""
    return [{k: v for k, v in p.items() if k != "hits"} for p in points]


def family_of(method: str) -> str:
    """The chart family of a registry method (its registry ``group``, merged so the Pareto chart keeps
    ≤ 8 families: one colour and one shape each). Taught in: 06_pipeline"""
    from thinlab.nn import methods as registry

    group = registry.get(method).group
    return GROUP_FAMILY.get(group, group)


def with_factors(points, dense_bytes: int) -> list[dict]:
    """Copies of ``points`` with ``factor`` = dense bytes / bytes. Taught in: 06_pipeline"""
    return [dict(p, factor=dense_bytes / p["bytes"]) for p in points]


def best_at_factor(points, factor: float):
    """The most accurate point whose ``factor`` is at least ``factor`` (None if none). Taught in: 06_pipeline"""
    return max((p for p in points if p["factor"] >= factor), key=lambda p: p["acc"], default=None)


def point_name(p: dict) -> str:
    """A short name for a Pareto point, as the chart labels it: ``"lowrank, size_fraction 0.01"``. Taught in: 06_pipeline"""
    return f"{p['method']}, {p['detail']}"


def chart_points(points, front) -> tuple[list[dict], list[dict]]:
    """``(all rows, front rows)`` for the Pareto chart: every point with its ``name``; the front's rows carry
    the label. Raises when the points have more than 8 families (one colour and one shape each).

    Taught in: 06_pipeline
    """
    fams = sorted({p["family"] for p in points})
    if len(fams) > 8:
        raise ValueError(f"{len(fams)} families {fams}: the chart gives each one a colour and a shape, at most 8")
    rows = [dict(p, name=point_name(p)) for p in without_hits(points)]
    return rows, [dict(p, name=point_name(p)) for p in without_hits(front)]


def ship_answer(points, budget: int = SHIP_BYTES, *, speakers=None) -> tuple[dict, list[str]]:
    """"What should I ship at ``budget`` bytes?" answered from the points: the most accurate point at or under
    the budget, the best pipeline point and the best baseline point (any form of lesson 00's CNN, LSTM or DNN)
    under it, and whether that baseline beats the pipeline there.

    Whether it does is a paired comparison of the two on the same clips
    (:func:`thinlab.stats.paired_compare`, baseline minus pipeline, bootstrapped over ``speakers``): it needs
    both points' per-clip ``hits`` (:func:`baseline_points`, :func:`run_points` with ``hits=``) and the
    clips' ``speakers``. Without them the sentence gives the gap and says there is no noise verdict.

    Returns ``(record, lines)``: ``record`` has ``budget``, ``best``, ``best_pipeline``, ``best_baseline``
    (points without their hits), ``baseline_vs_pipeline`` (the comparison as a dict, or None) and
    ``baseline_beats_pipeline``: True or False only when the paired verdict is beyond noise, else None
    (within noise, no comparison, or either has no point under the budget).

    Taught in: 06_pipeline
    """
    if not budget > 0:
        raise ValueError(f"budget={budget!r}: expected a positive number of bytes")
    fits = [p for p in points if p["bytes"] <= budget]
    best = max(fits, key=lambda p: (p["acc"], -p["bytes"]), default=None)
    is_base = lambda p: p["family"].startswith("baselines")            # noqa: E731
    pipe = max((p for p in fits if p["family"] == PIPELINE_FAMILY), key=lambda p: p["acc"], default=None)
    base = max((p for p in fits if is_base(p)), key=lambda p: p["acc"], default=None)
    plain = [p for p in points if p["family"] == BASELINE_FAMILY]
    smallest = min(plain, key=lambda p: p["bytes"], default=None)
    from thinlab.teach import human_bytes

    lines = [f"What should I ship at {human_bytes(budget)} ({budget:,} bytes)? "
             + (f"The most accurate model at or under it is {point_name(best)}: {human_bytes(best['bytes'])}, "
                f"accuracy {best['acc']:.3f}." if best else "No model of this run fits.")]
    if smallest is not None and smallest["bytes"] > budget:
        lines.append(f"No baseline fits as trained: the smallest, {smallest['method']}, takes "
                     f"{human_bytes(smallest['bytes'])}.")
    beats, cmp = None, None
    if base is not None and pipe is not None:
        said = (f"The best baseline under the budget is {point_name(base)} ({human_bytes(base['bytes'])}, "
                f"{base['acc']:.3f}); the best pipeline point is {point_name(pipe)} ({human_bytes(pipe['bytes'])}, "
                f"{pipe['acc']:.3f})")
        if "hits" in base and "hits" in pipe and speakers is not None:
            cmp = stats.paired_compare(base["hits"], pipe["hits"], speakers, a="the baseline", b="the pipeline")
            beats = {"better": True, "worse": False, "within noise": None}[cmp.verdict]
            lines.append(f"{said}. Paired on the same {cmp.n_clips} clips: {cmp.text()}"
                         + (", so this run cannot tell them apart" if cmp.verdict == "within noise" else "") + ".")
        else:
            diff = base["acc"] - pipe["acc"]
            gap = stats.points_text(abs(diff)).lstrip("+")          # never "0.0 points ahead" for a non-zero gap
            where = (f"the baseline is {gap} points {'ahead of' if diff > 0 else 'behind'} the pipeline" if diff
                     else "the two score the same")
            lines.append(f"{said}: {where}; without both points' per-clip hits and the clips' speakers there is "
                         "no paired comparison, so no verdict on noise.")
    elif pipe is not None:
        lines.append(f"No form of the baselines fits under the budget; the pipeline does ({human_bytes(pipe['bytes'])}, "
                     f"{pipe['acc']:.3f}).")
    elif base is not None:
        lines.append(f"The pipeline does not fit under the budget; the best baseline form does: {point_name(base)}.")
    bare = lambda p: None if p is None else without_hits([p])[0]          # noqa: E731
    record = {"budget": int(budget), "best": bare(best), "best_pipeline": bare(pipe), "best_baseline": bare(base),
              "baseline_vs_pipeline": cmp.as_dict() if cmp else None, "baseline_beats_pipeline": beats}
    return record, lines


# ---------------------------------------------------------------- the capstone

CHOICE_KEYS = ("prune_factor", "factor_method", "factor_fraction", "n_bits")
#: the reference choice a lesson run with SOLUTIONS = True uses (checked at CI size and full size)
CAPSTONE_REFERENCE = {"prune_factor": 3, "factor_method": "lowrank", "factor_fraction": 0.2, "n_bits": 4}


def _capstone_steps(teacher, choice: dict) -> list:
    """The (stage, step) pairs a capstone choice asks for; prune_factor 1, factor_fraction None or n_bits
    None skip that stage."""
    if not isinstance(choice, dict) or set(choice) != set(CHOICE_KEYS):
        raise ValueError(f"choice={choice!r}: expected a dict with exactly the keys {CHOICE_KEYS}")
    pf, meth, frac, bits = (choice[k] for k in CHOICE_KEYS)
    if isinstance(pf, bool) or not isinstance(pf, (int, float)) or pf < 1:
        raise ValueError(f"prune_factor={pf!r}: a number ≥ 1 (1 skips pruning)")
    if frac is not None and not (isinstance(frac, (int, float)) and 0 < frac < 1):
        raise ValueError(f"factor_fraction={frac!r}: a fraction in (0, 1), or None to skip factorising")
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16):
        raise ValueError(f"n_bits={bits!r}: an integer from 2 to 16, or None to skip quantising")
    steps = []
    if pf > 1:
        keep = pl.keep_for_factor(teacher, pf)
        steps.append(("prune", lambda m: pl.stage_prune(m, keep=keep)))
    if frac is not None:
        steps.append(("factorize", lambda m: pl.stage_factorize(m, method=meth, size_fraction=frac)))
    if bits is not None:
        steps.append(("quantize", lambda m: pl.stage_quantize(m, n_bits=bits)))
    if not steps:
        raise ValueError("this choice compresses nothing: set prune_factor > 1, a factor_fraction or n_bits")
    return steps


def capstone_bytes(teacher, choice: dict) -> int:
    """The bytes a capstone ``choice`` gives (the stages applied without training: the structure fixes
    the bytes). Taught in: 06_pipeline"""
    m = teacher
    for _, step in _capstone_steps(teacher, choice):
        m = step(m)
    return pl.model_bytes(m)


def capstone_limits(teacher_acc: float, *, size_limit: int = SHIP_BYTES, max_lost: float = CAPSTONE_LOSS) -> dict:
    """The capstone's size limit (bytes) and accuracy bar (the teacher's accuracy minus ``max_lost`` points),
    both from this run. Taught in: 06_pipeline"""
    return {"size_limit": int(size_limit), "accuracy_bar": max(0.0, float(teacher_acc) - max_lost / 100),
            "max_lost": max_lost}


def capstone_run(teacher, ds, ev: dict, choice: dict, *, finetune_epochs: int, seed: int = 0, device=None) -> dict:
    """Run the pipeline with the student's ``choice`` (keys :data:`CHOICE_KEYS`), fine-tuning after each
    stage (:class:`StageTable`). Returns ``choice``, ``bytes``, ``acc`` (fine-tuned, on ``ev``) and ``rows``.

    Taught in: 06_pipeline
    """
    steps = _capstone_steps(teacher, choice)
    S = StageTable(teacher, ev, ds.X_train, ds.y_train, finetune_epochs=finetune_epochs, seed=seed, device=device)
    for stage, step in steps:
        S.add(stage, step)
    last = S.rows[-1]
    return {"choice": dict(choice), "bytes": int(last["bytes"]), "acc": float(last["acc_ft"]), "rows": S.rows}


def save_and_time(model, teacher, path, X, *, device=None) -> tuple[dict, object]:
    """Save ``model`` (:func:`thinlab.nn.save_compressed`), reload it on the CPU, check it computes the same
    thing on ``X``, and time the teacher, the reloaded model and the reloaded model decoded once to dense.

    Returns ``(record, reloaded)``: ``record`` has ``file_bytes``, ``report_bytes`` (:func:`size_report`),
    ``overhead_bytes``, ``max_logit_diff``, ``same_predictions`` and ``timing_ms`` (best of 5 over all of
    ``X``, per model). Raises when the reload differs.

    Taught in: 06_pipeline
    """
    from thinlab.nn import load_compressed, save_compressed, size_report, uncompressed

    file_bytes = save_compressed(model, path)
    reloaded = load_compressed(path)
    dev = next(model.parameters()).device
    with torch.no_grad():
        xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
        diff = float((model.eval()(xt.to(dev)).cpu() - reloaded.eval()(xt)).abs().max())   # reloaded on the CPU
    same = bool((train.predict(model, X) == train.predict(reloaded, X)).all())
    if not (same and diff < 1e-4):
        raise AssertionError(f"the reloaded model differs (max |Δlogit| = {diff:.2e}, same predictions: {same})")
    report = int(size_report(model).total_bytes)
    models = {"dense teacher": teacher, "compressed, as stored": reloaded,
              "compressed, decoded once": uncompressed(reloaded)}
    ms = {name: 1000 * pl.time_inference(m, X) for name, m in models.items()}
    record = {"file_bytes": int(file_bytes), "report_bytes": report, "overhead_bytes": int(file_bytes) - report,
              "max_logit_diff": diff, "same_predictions": same, "timing_ms": ms}
    return record, reloaded


def summary_lines(rows, verdicts, students: dict, ship: dict | None = None) -> list[str]:
    """The closing sentences of lesson 06, from this run's stage rows, target verdicts, students and (if given)
    the answer of :func:`ship_answer`.

    Taught in: 06_pipeline
    """
    from thinlab.teach import human_bytes

    total = rows[0]["bytes"] / rows[-1]["bytes"]
    lost = 100 * (rows[0]["acc_ft"] - rows[-1]["acc_ft"])
    out = [f"The pipeline took the DNN from {rows[0]['bytes']:,} to {rows[-1]['bytes']:,} bytes ({total:.0f}x): "
           + ", ".join(f"{r['stage']} {r['stage_factor']:.1f}x" for r in rows[1:]) + ".",
           f"Accuracy went from {rows[0]['acc_ft']:.3f} to {rows[-1]['acc_ft']:.3f} with fine-tuning after each stage "
           f"({rows[-1]['acc_post']:.3f} without)."]
    out += [f"Target ≥ {v['factor_at_least']}x with ≤ {v['lost_at_most']:g} points lost: "
            + ("met." if v["met"] else f"not met (we have {total:.0f}x and {lost:+.1f} points).") for v in verdicts]
    n = len(students.get("seeds", [0]))
    out.append(f"A student of the same size trained from scratch reached {students['acc_alone']:.3f} alone and "
               f"{students['acc_distilled']:.3f} distilled (mean of {n} seed{'s' if n > 1 else ''}; "
               f"{students['vs_alone']['verdict']} by the paired comparison).")
    if ship and ship.get("best"):
        b = ship["best"]
        out.append(f"At {human_bytes(ship['budget'])} the most accurate model of this run is {point_name(b)} "
                   f"({b['acc']:.3f}).")
    return out
