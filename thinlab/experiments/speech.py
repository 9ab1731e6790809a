"""Lesson 00's experiments: split checks, the speaker leak, the baselines table, synthetic → real.

Each function is what a lesson-00 cell used to do inline, so the notebook reads as narration over
tested calls. They print what the lesson shows (``verbose=True``) and return the numbers the
lesson writes to its JSON.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import numpy as np

from thinlab import data, models, stats, train

SPLITS = ("train", "val", "test")
RANDOM, SPEAKER = "random (file-level)", "speaker-disjoint"


def _overlap(a, b) -> set:
    return set(np.asarray(a).tolist()) & set(np.asarray(b).tolist())


def example_clips(ds, *, n_words: int = 3) -> list[dict]:
    """The first training clip of each of the first ``n_words`` words.

    Returns rows ``{"label", "index", "file", "speaker"}`` (``index`` into ``ds.X_train``), in label order.

    Taught in: 00_speech_commands
    """
    rows = []
    for label in ds.labels[:n_words]:
        hits = np.flatnonzero(np.asarray(ds.y_train) == ds.labels.index(label))
        if hits.size:
            i = int(hits[0])
            rows.append({"label": label, "index": i, "file": str(ds.files_train[i]),
                         "speaker": str(ds.speakers_train[i])})
    return rows


def split_summary(ds, *, overlap=None) -> tuple[list[dict], dict]:
    """Check the three splits share no speaker; count clips per word and split, speakers per split.

    Parameters
    ----------
    ds : a :func:`thinlab.data.load_dataset` result
    overlap : callable ``(speakers_a, speakers_b) -> set``, e.g. the student's ``speaker_overlap``
        (default: a set intersection)

    Returns
    -------
    (rows ``{"split", "word", "clips"}``, ``{split: distinct speakers}``); raises ``AssertionError`` naming
    the shared speakers when two splits overlap. The 12-class task's ``_silence_`` clips have no speaker
    (``""``) and are left out of both.

    Taught in: 00_speech_commands
    """
    overlap = overlap or _overlap
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        shared = set(overlap(getattr(ds, f"speakers_{a}"), getattr(ds, f"speakers_{b}"))) - {""}  # "": silence
        assert not shared, f"speakers in both {a} and {b}: {sorted(shared)[:5]}"
    counts = np.stack([np.bincount(np.asarray(getattr(ds, f"y_{s}")), minlength=len(ds.labels))
                       for s in SPLITS])                                       # (3, classes)
    rows = [{"split": s, "word": w, "clips": int(counts[i, c])} for i, s in enumerate(SPLITS)
            for c, w in enumerate(ds.labels)]
    return rows, {s: len(set(np.asarray(getattr(ds, f"speakers_{s}")).tolist()) - {""}) for s in SPLITS}


def leak_verdict(gap: float, noise: float) -> str:
    """Words for a random-minus-speaker accuracy ``gap`` against ``noise`` (two standard errors).

    Taught in: 00_speech_commands
    """
    if gap > noise:
        return "the leak is larger than the noise here"
    if abs(gap) <= noise:
        return ("this run cannot tell a leak from noise (more test speakers narrow the error bars: `make data` "
                "downloads the official test set)")
    return "the speaker-disjoint split scored higher, beyond the noise"


def speaker_leak(source, ds, *, task: str, model: str = "dnn", epochs: int, seeds, max_per_class=None,
                 device=None, overlap=None, load=None, verbose: bool = True) -> dict:
    """Train ``model`` on a random file-level split and on the speaker-disjoint ``ds``, once per seed.

    For each seed a new random split of ``source`` is drawn (``load``, default
    :func:`thinlab.data.load_dataset` with ``split="random"``) and both models start from that seed's
    weights. The speaker-disjoint test set is the same clips every seed (its per-clip hits are averaged);
    the random split's test sets are pooled. Standard errors resample speakers.

    Returns
    -------
    dict with ``random_split_acc``, ``speaker_split_acc`` (means over seeds), ``gap_points`` (100 ×
    their difference), ``noise_points`` (two standard errors of the difference, in points), ``se_random``,
    ``se_speaker``, ``seeds``, ``runs`` (one row per split and seed), ``leaked_test_speakers`` (random-split
    test speakers who also spoke in training, over all seeds) and ``verdict``.

    Taught in: 00_speech_commands
    """
    load = load or data.load_dataset
    overlap = overlap or _overlap
    seeds = list(seeds)
    runs, leaked, hits, random_speakers = [], set(), {RANDOM: [], SPEAKER: []}, []
    for s in seeds:
        ds_random = load(source, task=task, split="random", max_per_class=max_per_class, seed=s, verbose=False)
        leaked |= set(overlap(ds_random.speakers_train, ds_random.speakers_test)) - {""}  # "": silence clips
        random_speakers.append(np.asarray(ds_random.speakers_test))
        for name, d in [(RANDOM, ds_random), (SPEAKER, ds)]:
            m = models.build_model(model, len(d.labels), n_frames=d.X_train.shape[1], n_mels=d.X_train.shape[2])
            train.fit(m, d.X_train, d.y_train, epochs=epochs, seed=s, desc=f"{name}, seed {s}", device=device,
                      progress=verbose)
            hits[name].append(stats.correct(m, d.X_test, d.y_test))          # (N,) per clip: right or wrong
            runs.append({"split": name, "seed": s, "test accuracy": float(hits[name][-1].mean()),
                         "training clips": len(d.y_train), "test clips": len(d.y_test)})
    mean = {k: float(np.mean([r["test accuracy"] for r in runs if r["split"] == k])) for k in (RANDOM, SPEAKER)}
    iv_speaker = stats.accuracy_interval(np.stack(hits[SPEAKER]), ds.speakers_test)
    iv_random = stats.accuracy_interval(np.concatenate(hits[RANDOM]), np.concatenate(random_speakers))
    gap, noise = mean[RANDOM] - mean[SPEAKER], train.difference_noise(iv_random.se, iv_speaker.se)
    out = {"random_split_acc": mean[RANDOM], "speaker_split_acc": mean[SPEAKER], "gap_points": 100 * gap,
           "noise_points": 100 * noise, "se_random": iv_random.se, "se_speaker": iv_speaker.se, "seeds": seeds,
           "runs": runs, "leaked_test_speakers": len(leaked), "verdict": leak_verdict(gap, noise)}
    if verbose:
        print(f"random split: {len(leaked)} test speakers (over {len(seeds)} split{'s' * (len(seeds) > 1)}) also "
              "spoke in training")
        print(f"mean over {len(seeds)} seed(s): random split {mean[RANDOM]:.3f} ± {iv_random.se:.3f}, "
              f"speaker-disjoint {mean[SPEAKER]:.3f} ± {iv_speaker.se:.3f} (speaker-bootstrap standard errors)")
        print(f"the random split reports {100 * gap:+.1f} points versus the honest speaker-disjoint split; two "
              f"standard errors of that difference are {100 * noise:.1f} points, so {out['verdict']}")
    return out


def baselines(lesson, names) -> tuple[list[dict], dict, dict]:
    """Train (or load) each baseline in ``names`` and score it on the test speakers.

    ``lesson`` is a :class:`thinlab.experiments.setup.Lesson` (its ``baseline`` and ``interval``).

    Returns
    -------
    (table rows, ``{name: model}``, ``{name: stats.Interval}``)

    Taught in: 00_speech_commands
    """
    rows, trained, intervals = [], {}, {}
    for name in names:
        model, info = lesson.baseline(name)
        trained[name] = model
        iv = intervals[name] = lesson.interval(model)
        rows.append({"model": name, "test accuracy": info["test_acc"],
                     "95% interval (speakers)": f"{iv.low:.3f}–{iv.high:.3f}",
                     "binomial ±": round(iv.binomial_se, 3), "speaker ±": round(iv.se, 3),
                     "val accuracy": info["val_acc"], "parameters": models.n_params(model),
                     "FP32 bytes": models.fp32_bytes(model), "train s": round(info["seconds"], 1),
                     "cached": info["cached"]})
    return rows, trained, intervals


def models_record(rows, intervals) -> dict:
    """The ``results["models"]`` record: test accuracy, parameters, FP32 bytes and interval per model.

    Taught in: 00_speech_commands
    """
    return {r["model"]: {"test accuracy": r["test accuracy"], "parameters": r["parameters"],
                         "FP32 bytes": r["FP32 bytes"],
                         "interval": [intervals[r["model"]].low, intervals[r["model"]].high]} for r in rows}


def synthetic_to_real(source, ds, names, *, task: str, trained_acc=None, max_per_class=None, epochs: int,
                      seed: int = 0, device=None, verbose: bool = True) -> dict | None:
    """Train each model in ``names`` on synthetic speech and score it on real clips.

    Real clips: this run's test split when ``source`` is real, else the repository's real fixture
    (:func:`thinlab.data.fixture_dir`; ``None`` is returned when it is missing). ``trained_acc``
    (``{name: test accuracy}`` of the models trained on real data) adds the trained-on-real column.

    Returns
    -------
    ``{"real_clips", "real_speakers", "where", "rows"}``, each row ``{"model", "synthetic test clips",
    "real clips"[, "trained on real, real clips"]}``.

    Taught in: 00_speech_commands
    """
    synthetic_run = not source.is_real
    synth_ds = ds if synthetic_run else data.load_dataset(
        data.resolve_source("synthetic", synth_kwargs={"seed": seed}), task=task, max_per_class=max_per_class,
        seed=seed, verbose=False)
    where = data.fixture_dir() if synthetic_run else source.path
    if where is None:
        if verbose:
            print("no real clips to score on (thinlab was installed without its repository): run `make data`")
        return None
    real = data.load_eval_set(where, task=task) if synthetic_run else None
    X_real, y_real = (real.X, real.y) if synthetic_run else (ds.X_test, ds.y_test)
    spk_real = set(np.asarray(real.speakers if synthetic_run else ds.speakers_test).tolist()) - {""}
    what = "the repository's real fixture" if synthetic_run else "this run's real test split"
    assert synth_ds.labels == (real.labels if synthetic_run else ds.labels), "the two sets name their classes differently"
    rows = []
    for name in names:
        m_syn, info_syn = train.baseline(name, synth_ds, epochs=epochs, seed=seed, device=device, verbose=False)
        row = {"model": name, "synthetic test clips": info_syn["test_acc"],
               "real clips": train.evaluate(m_syn, X_real, y_real)["accuracy"]}
        if not synthetic_run:
            row["trained on real, real clips"] = (trained_acc or {}).get(name)
        rows.append(row)
        if verbose:
            print(f"{name}: trained on synthetic speech, {row['synthetic test clips']:.3f} on synthetic test clips "
                  f"-> {row['real clips']:.3f} on {len(y_real)} real clips from {len(spk_real)} speakers ({what}); "
                  f"chance {1 / len(synth_ds.labels):.3f}")
    return {"real_clips": int(len(y_real)), "real_speakers": len(spk_real), "where": what, "rows": rows}


def gap_rows_long(gap: dict | None) -> list[dict]:
    """``synthetic_to_real``'s rows in long form (``model``, ``scored on``, ``accuracy``) for a bar chart.

    Taught in: 00_speech_commands
    """
    return [{"model": r["model"], "scored on": k, "accuracy": v} for r in (gap or {}).get("rows", [])
            for k, v in r.items() if k != "model" and v is not None]


def interval_report(intervals: dict, record: dict, *, verbose: bool = True) -> dict:
    """Compare each model's binomial and speaker-bootstrap errors; return interval widths in points.

    ``intervals``: ``{name: stats.Interval}``; ``record``: :func:`thinlab.stats.eval_record` of the test split.

    Taught in: 00_speech_commands
    """
    if verbose:
        print(f"test split: {record['n_clips']} clips from {record['n_speakers']} speakers; the largest speaker "
              f"holds {record['largest_speaker_share']:.0%} of the clips")
        for name, iv in intervals.items():
            print(f"{name}: {iv.text()}; binomial ± {iv.binomial_se:.3f} vs speaker-bootstrap ± {iv.se:.3f} "
                  f"({iv.se / max(iv.binomial_se, 1e-9):.1f}x)")
    widths = {n: 100 * iv.width for n, iv in intervals.items()}
    if verbose and widths:
        print(f"interval width {min(widths.values()):.0f}-{max(widths.values()):.0f} points with "
              f"{record['n_speakers']} test speakers: more speakers (make data: the official 12-class test set) "
              "shrink it")
    return widths


def size_accuracy(rows) -> dict:
    """Each baseline's bytes against its accuracy: accuracy per KB, the Pareto front and who dominates whom.

    ``rows``: :func:`baselines` rows (``model``, ``test accuracy``, ``FP32 bytes``, ``parameters``).

    Returns
    -------
    dict with ``points`` (one row per model: ``model``, ``bytes``, ``accuracy``, ``parameters``,
    ``points per KB`` = accuracy points (100 × accuracy) per 1,000 bytes), ``best_per_kb`` (the model with the
    most accuracy per KB), ``most_accurate``, ``smallest``, ``largest``, ``most_parameters``, ``front`` (models no other model
    beats on both bytes and accuracy, smallest first) and ``dominated_by`` (model → the models that are at
    most its size and at least as accurate, better on one of the two).

    Taught in: 00_speech_commands
    """
    rows = list(rows)
    if not rows:
        raise ValueError("size_accuracy needs at least one baseline row (from speech.baselines)")
    pts = [{"model": r["model"], "bytes": int(r["FP32 bytes"]), "accuracy": float(r["test accuracy"]),
            "parameters": int(r["parameters"]), "points per KB": 100 * float(r["test accuracy"]) / (r["FP32 bytes"] / 1e3)}
           for r in rows]
    for p in pts:
        if p["bytes"] <= 0 or not 0 <= p["accuracy"] <= 1:
            raise ValueError(f"{p['model']}: bytes {p['bytes']} and accuracy {p['accuracy']}: expected bytes > 0 "
                             "and an accuracy between 0 and 1")

    def beats(a, b):   # a is at most b's size and at least as accurate, strictly better on one of the two
        return (a["bytes"] <= b["bytes"] and a["accuracy"] >= b["accuracy"]
                and (a["bytes"] < b["bytes"] or a["accuracy"] > b["accuracy"]))

    dominated_by = {p["model"]: [q["model"] for q in pts if beats(q, p)] for p in pts}
    pick = lambda key, f=max: f(pts, key=lambda p: p[key])["model"]   # noqa: E731
    return {"points": pts, "best_per_kb": pick("points per KB"), "most_accurate": pick("accuracy"),
            "smallest": pick("bytes", min), "largest": pick("bytes"), "most_parameters": pick("parameters"),
            "front": [p["model"] for p in sorted(pts, key=lambda p: p["bytes"]) if not dominated_by[p["model"]]],
            "dominated_by": dominated_by}


def _names(models) -> str:
    models = [m.upper() for m in models]
    return models[0] if len(models) == 1 else ", ".join(models[:-1]) + " and " + models[-1]


def dense_shapes(model) -> list[tuple[int, int]]:
    """``(in, out)`` of every ``nn.Linear`` layer of ``model``, in order (the paper's (Q, R)).

    Taught in: 00_speech_commands
    """
    import torch.nn as nn

    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def why_dnn(sa: dict, *, target: str = "dnn", target_shapes=()) -> str:
    """The computed paragraph on size against accuracy and why the course still compresses ``target``.

    ``sa``: :func:`size_accuracy`; ``target_shapes``: the target's dense layers (:func:`dense_shapes`).
    Every comparison word (smaller, more accurate, dominates) is chosen from the numbers in ``sa``.

    Taught in: 00_speech_commands
    """
    from thinlab.teach import human_bytes

    pts = {p["model"]: p for p in sa["points"]}
    if target not in pts:
        raise KeyError(f"{target!r} is not among the baselines {sorted(pts)}")
    t, best = pts[target], pts[sa["best_per_kb"]]
    top = pts[sa["most_accurate"]]
    out = [f"Most accurate per byte in this run: the {best['model'].upper()}, {best['accuracy']:.1%} in "
           f"{human_bytes(best['bytes'])} ({best['points per KB']:.3g} accuracy points per KB, against the {target.upper()}'s "
           f"{t['points per KB']:.2g}); most accurate overall: the {top['model'].upper()} ({top['accuracy']:.1%}"
           + (f" in {human_bytes(t['bytes'])})." if top["model"] == target else
              f"); the {target.upper()}: {t['accuracy']:.1%} in {human_bytes(t['bytes'])}.")]
    dom = sa["dominated_by"][target]
    out.append(f"The {_names(dom)} {'is' if len(dom) == 1 else 'are'} both smaller than the {target.upper()} and at "
               "least as accurate: this run gives no reason to ship the " + target.upper() + " as a keyword spotter."
               if dom else f"No other baseline is both smaller and more accurate than the {target.upper()}.")
    ratio = t["parameters"] / best["parameters"] if target != best["model"] else 1.0
    wide = (", ".join(f"{q}×{r}" for q, r in target_shapes[:3]) + (" …" if len(target_shapes) > 3 else "")
            if target_shapes else "")
    most = sa["most_parameters"] == target
    third = (f"it is the most over-parameterized: it has the most parameters ({t['parameters']:,}"
             + (f", {ratio:.1f}x the {best['model'].upper()}'s" if target != best["model"] else "") + ")" if most else
             f"it is heavily parameterized ({t['parameters']:,} parameters, though the "
             f"{sa['most_parameters'].upper()} has more)")
    out.append(
        f"The course still starts from the {target.upper()} for three reasons, none of them that it is the best model: "
        f"(1) it is the DeepThin paper's subject: the paper compresses the wide dense layers of acoustic models such as "
        f"TFKaldi, and this network is built like them; (2) its wide dense layers{' (' + wide + ')' if wide else ''} are "
        f"exactly what pruning and low-rank factorization act on; (3) {third}.")
    if target != best["model"]:
        d = 100 * (best["accuracy"] - t["accuracy"])
        out.append(f"The pruning survey warns that pruning \"does not help as much as switching to a better "
                   f"architecture\"; in this run, switching from the {target.upper()} to the {best['model'].upper()} "
                   f"{'gains' if d > 0 else 'loses' if d < 0 else 'changes'} {abs(d):.1f} points of accuracy and "
                   f"shrinks the model {t['bytes'] / best['bytes']:.1f}x before any compression. Keep these points in "
                   "mind: a compressed DNN in the lessons that follow is worth its bytes only where it beats them.")
    return " ".join(out)
