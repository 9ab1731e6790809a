"""DeepThin's rank: the paper's r = 1 against the largest rank that fits, at the same bytes.

The paper trains every DeepThin model with r = 1 (its section 5.3.1: r = 1 did as well as or better
than larger ranks). thinlab's solver can instead spend the same bytes on the largest rank whose
factors fit: shorter W_aux rows (n ≈ √(Q·R) instead of n ≈ 1/α) and r > 1. Which one trains better
on our task is measured here, and the library default (:data:`thinlab.deepthin.network.DEFAULT_RANK`)
follows the measurement: r = 1 unless the largest rank is better beyond noise on both data sets.

:func:`rank_comparison` trains both at each size and seed (through
:func:`thinlab.experiments.compare.train_compressed`, the recipe of lesson 03's comparison);
:func:`rank_verdict` puts the difference against its noise. ``python -m thinlab.experiments.deepthin_rank``
runs it at lesson 03's sizes and writes a JSON file (resumable, one data set per call).

Taught in: 03_deepthin
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from thinlab import train
from thinlab._io import atomic_file
from thinlab.experiments import compare

#: the two ranks compared: the paper's and the largest that fits each layer
RANKS = (1, "max")


def _plan_ranks(shapes: dict, factor: float, rank) -> dict:
    """layer → (m, n, r) of the DeepThin plan at 1/factor with this rank policy."""
    detail = compare.plan("deepthin", shapes, size_fraction=1 / factor, rank=rank)["detail"]
    return {k: (d["m"], d["n"], d["r"]) for k, d in detail.items()}


def rank_comparison(ds, *, factors, seeds, epochs: int = 20, ranks=RANKS, device=None, max_train=None,
                    progress: bool = False, done=(), on_run=None) -> list[dict]:
    """Train DeepThin at every (factor, rank, seed) with the same bytes and recipe.

    Parameters
    ----------
    ds : a dataset from :func:`thinlab.data.load_dataset`
    factors : compression factors 1/size_fraction of the DNN's hidden layers
    seeds : training seeds
    ranks : rank policies (:func:`thinlab.deepthin.plan_network`'s ``rank``), default ``(1, "max")``
    done : runs already measured (dicts as returned); they are kept and not trained again
    on_run : called with the list of runs after each new run (e.g. to save progress)

    Returns
    -------
    list of dicts ``factor``, ``rank`` (the policy, as a string), ``seed``, ``acc`` (on the test split),
    ``hits`` and ``speakers`` (per test clip, for the paired verdict), ``n_eval``, ``bytes``, ``layers`` (layer → [m, n, r]), ``seconds``,
    ``same_as_rank_1`` (True when the policy gives the r = 1 plan itself: then the run is copied,
    not retrained).

    Taught in: 03_deepthin
    """
    from thinlab.models import build_model

    n_classes, (_, n_frames, n_mels) = len(ds.labels), np.shape(ds.X_train)
    shapes = compare.hidden_shapes(build_model("dnn", n_classes, n_frames=n_frames, n_mels=n_mels))
    runs = [dict(r) for r in done]
    have = {(r["factor"], r["rank"], r["seed"]): r for r in runs}
    for F in factors:
        base = _plan_ranks(shapes, F, 1)
        for rank in ranks:
            layers = _plan_ranks(shapes, F, rank)
            for seed in seeds:
                key = (F, str(rank), seed)
                if key in have:
                    continue
                same = layers == base and str(rank) != "1" and (F, "1", seed) in have
                if same:
                    r = dict(have[(F, "1", seed)], rank=str(rank), same_as_rank_1=True)
                else:
                    out = compare.train_compressed(ds, method="deepthin", size_fraction=1 / F, seed=seed,
                                                   epochs=epochs, eval_splits=("test",), device=device,
                                                   rank=rank, max_train=max_train, progress=progress)
                    r = {"factor": F, "rank": str(rank), "seed": int(seed), "acc": out["acc"], "n_eval": out["n_eval"],
                         "bytes": out["bytes"], "layers": {k: list(v) for k, v in layers.items()},
                         "seconds": out["seconds"], "same_as_rank_1": layers == base and str(rank) != "1",
                         "hits": out["hits"], "speakers": out["speakers"]}
                runs.append(r)
                have[key] = r
                if on_run is not None:
                    on_run(runs)
    return runs


def rank_verdict(runs, *, reference: str = "1", other: str = "max") -> dict:
    """Is ``other`` better than ``reference`` beyond noise? Per factor and pooled over factors.

    When the runs hold per-clip ``hits`` (every run of :func:`rank_comparison` does), the verdict is the
    paired speaker bootstrap of :func:`thinlab.stats.paired_compare` on the test clips, with per-clip
    correctness averaged over seeds (pooled: also over the factors where the plans differ); ``noise``
    is then the half-width of that 95 % interval. Runs without hits (an older saved study) fall back to
    the spread over seeds: ``train.difference_noise(se_ref, se_other)`` with se = std / √seeds.
    The verdict is ``"<other> better"``, ``"<reference> better"``, ``"within noise"``, or
    ``"same plan"`` when both policies give the same layers.

    Returns
    -------
    dict with ``rows`` (one per factor), ``mean_diff``, ``noise``, ``verdict``.

    Taught in: 03_deepthin
    """
    by: dict = {}
    for r in runs:
        by.setdefault((r["factor"], r["rank"]), []).append(r)
    from thinlab import stats

    paired = all("hits" in r for r in runs)
    rows, diffs, var, pooled_a, pooled_b = [], [], [], [], []

    def judge(a_hits, b_hits, spk):
        c = stats.paired_compare(b_hits, a_hits, spk, a=other, b=reference)
        v = {"better": f"{_label(other)} better", "worse": f"{_label(reference)} better"}.get(c.verdict, "within noise")
        return c.diff, (c.high - c.low) / 2, v
    for F in sorted({f for f, _ in by}):
        a, b = by.get((F, reference), []), by.get((F, other), [])
        if not a or not b:
            continue
        acc_a, acc_b = np.array([r["acc"] for r in a]), np.array([r["acc"] for r in b])
        sd_a = float(acc_a.std(ddof=1)) if len(a) > 1 else 0.0
        sd_b = float(acc_b.std(ddof=1)) if len(b) > 1 else 0.0
        se_a, se_b = sd_a / math.sqrt(len(a)), sd_b / math.sqrt(len(b))
        diff, noise = float(acc_b.mean() - acc_a.mean()), train.difference_noise(se_a, se_b)
        same = all(r.get("same_as_rank_1") for r in b)
        verdict = "same plan" if same else ("within noise" if abs(diff) <= noise else
                                            f"{_label(other)} better" if diff > 0 else f"{_label(reference)} better")
        if paired and not same:
            ha = np.stack([np.asarray(r["hits"], float) for r in a]).mean(axis=0)
            hb = np.stack([np.asarray(r["hits"], float) for r in b]).mean(axis=0)
            diff, noise, verdict = judge(ha, hb, np.asarray(a[0]["speakers"]))
            pooled_a.append(ha)
            pooled_b.append(hb)
        rows.append({"factor": F, f"acc {_label(reference)}": float(acc_a.mean()), f"std {_label(reference)}": sd_a,
                     f"acc {_label(other)}": float(acc_b.mean()), f"std {_label(other)}": sd_b,
                     "ranks": {k: v[2] for k, v in b[0]["layers"].items()}, "diff": diff, "noise": noise,
                     "seeds": min(len(a), len(b)), "verdict": verdict})
        if not same:
            diffs.append(diff)
            var.append(se_a ** 2 + se_b ** 2)
    if not diffs:
        return {"rows": rows, "mean_diff": float("nan"), "noise": float("nan"), "verdict": "same plan"}
    mean_diff, noise = float(np.mean(diffs)), 2 * math.sqrt(sum(var)) / len(diffs)
    verdict = ("within noise" if abs(mean_diff) <= noise else
               f"{_label(other)} better" if mean_diff > 0 else f"{_label(reference)} better")
    if paired:
        spk = np.asarray(next(r for r in runs if "speakers" in r)["speakers"])
        mean_diff, noise, verdict = judge(np.mean(pooled_a, axis=0), np.mean(pooled_b, axis=0), spk)
    return {"rows": rows, "mean_diff": mean_diff, "noise": noise, "verdict": verdict}


def _label(rank: str) -> str:
    return "r = 1" if rank == "1" else "largest rank" if rank == "max" else f"r ≤ {rank}"


def default_rank(verdicts: dict) -> int | str:
    """The rank policy the evidence supports: ``"max"`` only when the largest rank is better beyond
    noise (pooled over sizes) on every data set in ``verdicts`` (name → :func:`rank_verdict`), else 1.

    Taught in: 03_deepthin
    """
    if verdicts and all(v["verdict"] == "largest rank better" for v in verdicts.values()):
        return "max"
    return 1


def main(argv=None) -> int:
    """Command line: run the rank comparison on a data set and write its verdicts as JSON.

    Taught in: 03_deepthin
    """
    p = argparse.ArgumentParser(prog="python -m thinlab.experiments.deepthin_rank", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help='"synthetic" or a folder in the Speech Commands layout')
    p.add_argument("--factors", type=int, nargs="+", default=[20, 100, 200, 350])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ranks", nargs="+", default=["1", "max"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", default="build/deepthin_rank.json")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: every CPU)")
    args = p.parse_args(argv)
    from thinlab import data

    train.use_threads(args.threads)

    ranks = [r if r == "max" else int(r) for r in args.ranks]
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.exists() else {}
    name = "synthetic" if args.data == "synthetic" else Path(args.data).name
    source = data.resolve_source(args.data, synth_kwargs={"seed": 0}, download=False)
    ds = data.load_dataset(source, task="10words", split="speaker", seed=0)

    def save(runs):
        saved[name] = {"runs": runs, "n_train": int(len(ds.y_train)), "epochs": args.epochs,
                       "verdict": rank_verdict(runs)}
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(out, "w") as f:
            f.write(json.dumps(saved, indent=1, default=lambda o: o.tolist()))      # per-clip hits are arrays

    runs = rank_comparison(ds, factors=args.factors, seeds=args.seeds, epochs=args.epochs, ranks=ranks,
                           done=saved.get(name, {}).get("runs", []), on_run=save)
    save(runs)
    v = saved[name]["verdict"]
    for row in v["rows"]:
        print(f"1/{row['factor']}: r = 1 {row['acc r = 1']:.3f} ± {row['std r = 1']:.3f}, largest rank "
              f"{row['acc largest rank']:.3f} ± {row['std largest rank']:.3f} (ranks {row['ranks']}), "
              f"diff {row['diff']:+.3f}, noise {row['noise']:.3f}: {row['verdict']}")
    print(f"{name}: mean diff {v['mean_diff']:+.3f}, noise {v['noise']:.3f}: {v['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
