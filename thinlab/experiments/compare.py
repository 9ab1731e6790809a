"""The DeepThin paper's experiment as a library: train one compression method at one size and seed.

Every method gets the same byte budget for the same layers (``size_fraction`` · their dense
float32 bytes), is trained from scratch with the same recipe (:func:`thinlab.train.fit`
defaults: AdamW, one-cycle, the same epochs) and is scored on held-out speakers:

* ``"dense"``      the uncompressed model (size_fraction 1), via the :func:`thinlab.train.baseline` cache
* ``"deepthin"``, ``"deepthin_shuffled"``, ``"hashed"``: :func:`thinlab.nn.compress` with
  ``init="random"`` (DeepThin plans the whole network, :func:`thinlab.deepthin.plan_network`)
* ``"lowrank"``    rank-r factors, ranks planned over the network like DeepThin (a layer that
  cannot go below rank 1 is pinned there and the others pay), see :func:`lowrank_ranks`
* ``"prune"``      dense training with gradual magnitude pruning (:mod:`thinlab.experiments.gradual`,
  the course's one schedule) to the CSR byte budget of each layer
* ``"narrow"``     the same architecture with every compressed hidden layer narrowed to the width
  whose dense weights fit the budget (:func:`narrow_width`)

:func:`plan` gives each method's layout and bytes *before* training; :func:`train_compressed`
checks the trained model's :func:`~thinlab.nn.size_report` against it.
The fused-product timing lives in :mod:`thinlab.experiments.timing`.

Taught in: 03_deepthin (and reused by 06_pipeline)
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from thinlab import train
from thinlab.experiments.gradual import gradual_step
from thinlab.lowrank import network_ranks as lowrank_ranks  # noqa: F401 (lesson 03 reads the planned ranks)
from thinlab.models import build_model
from thinlab.nn import methods
from thinlab.nn.compress import compress, size_report
from thinlab.nn.lowrank import thin_dnn

#: the compared methods: the controls and every registered method sized by a byte budget
METHODS = ("dense", *methods.names("plan"), "narrow")


def hidden_shapes(model) -> dict:
    """name → paper (Q, R) = (in, out) of a DNN's hidden Linear layers (the ones the lesson compresses).

    Taught in: 03_deepthin
    """
    return {f"hidden.{i}": (l.in_features, l.out_features) for i, l in enumerate(model.hidden)}


def narrow_width(budget_bytes: float, *, in_dim: int, n_hidden: int, dtype="float32") -> int:
    """Widest hidden layers h whose dense weights (in_dim·h + (n_hidden − 1)·h²) fit ``budget_bytes``.

    Taught in: 03_deepthin
    """
    item = np.dtype(dtype).itemsize
    k = n_hidden - 1
    per = budget_bytes / item                                      # weights allowed
    h = int(per / in_dim) if k == 0 else int((-in_dim + math.sqrt(in_dim ** 2 + 4 * k * per)) / (2 * k))
    while h > 0 and item * (in_dim * h + k * h * h) > budget_bytes:
        h -= 1
    while item * (in_dim * (h + 1) + k * (h + 1) ** 2) <= budget_bytes:
        h += 1
    if h < 1:
        raise ValueError(f"a budget of {budget_bytes:,.0f} bytes does not hold even one hidden unit "
                         f"({item * (in_dim + k)} bytes for in_dim={in_dim}, {n_hidden} layers); raise size_fraction")
    return h


def plan(method: str, shapes: dict, *, size_fraction: float, rank=None) -> dict:
    """A method's layout for the layers ``shapes`` (name → (Q, R)) at ``size_fraction`` of their bytes.

    ``rank`` (DeepThin methods only) is :func:`thinlab.deepthin.plan_network`'s: None for the
    library default (the paper's r = 1), ``"max"`` for the largest rank that fits, or an int cap.

    Returns
    -------
    dict with ``bytes`` (stored bytes of those layers' weights), ``size_fraction`` (achieved),
    ``detail`` (per layer: DeepThin m, n, r; ranks; buckets; CSR nnz; or the narrow width).

    Taught in: 03_deepthin
    """
    _check_method(method, rank)
    if method in CONTROLS:
        return CONTROLS[method](shapes, size_fraction)
    return methods.get(method).layout(shapes, size_fraction, **({} if rank is None else {"rank": rank}))


def _check_method(method, rank) -> None:
    if method not in METHODS:
        raise ValueError(f"method={method!r}; choose one of {METHODS}")
    if rank is not None and (method in CONTROLS or not methods.get(method).plans_network):
        raise ValueError(f"rank={rank!r} applies to the DeepThin methods only, not method={method!r}; leave it None")


def _dense_plan(shapes, size_fraction):
    dense = sum(4 * q * r for q, r in shapes.values())
    return {"bytes": dense, "size_fraction": 1.0, "detail": {}}


def _narrow_plan(shapes, size_fraction):
    """in_dim → h → … → h: the widest plain hidden layers within the budget."""
    dense = sum(4 * q * r for q, r in shapes.values())
    names = list(shapes)
    h = narrow_width(size_fraction * dense, in_dim=shapes[names[0]][0], n_hidden=len(names))
    nbytes = 4 * (shapes[names[0]][0] * h + (len(names) - 1) * h * h)
    return {"bytes": int(nbytes), "size_fraction": nbytes / dense, "detail": {"width": h}}


#: the two controls beside the registered methods: no compression (the reference), and a narrower plain network
CONTROLS = {"dense": _dense_plan, "narrow": _narrow_plan}
REFERENCE = "dense"


def is_reference(method: str) -> bool:
    """Whether ``method`` names the uncompressed reference control (:data:`REFERENCE`), not a
    compression method: the one place that tells them apart by name.

    Taught in: 03_deepthin
    """
    return method == REFERENCE


def against(groups: dict, reference: str):
    """``(method, size_fraction, reference rows, rows)`` for each group of ``groups`` (keyed by
    ``(method, size_fraction)``) other than ``reference``'s own, that has a ``reference`` group at its size.

    Taught in: 03_deepthin
    """
    for (method, frac), rows in groups.items():
        ref = groups.get((reference, frac))
        if ref is not None and (method, frac) != (reference, frac):
            yield method, frac, ref, rows


def _train_dense(net, ds, *, model, model_kwargs, recipe, **_):
    """The uncompressed control: lesson 00's cached baseline."""
    r = dict(recipe)
    net, _ = train.baseline(model, ds, epochs=r["epochs"], seed=r["seed"], batch_size=r["batch_size"], lr=r["lr"],
                            model_kwargs=model_kwargs or None, progress=r["progress"], verbose=False,
                            device=r["device"])
    return net, plan("dense", hidden_shapes(net), size_fraction=1.0)


def _train_narrow(net, ds, *, size_fraction, recipe, **_):
    """The narrow control: hidden budget + the rest of the model, as one plain narrower DNN."""
    shapes = hidden_shapes(net)
    dense_hidden = plan("dense", shapes, size_fraction=1.0)["bytes"]
    whole = int(size_fraction * dense_hidden) + size_report(net).total_bytes - dense_hidden
    train.seed_everything(recipe["seed"])
    net, width = thin_dnn(net, n_bytes=whole)
    thin_hidden = plan("dense", hidden_shapes(net), size_fraction=1.0)["bytes"]
    train.fit(net, ds.X_train, ds.y_train, desc=f"narrow {size_fraction:.3g}", **recipe)
    return net, {"bytes": thin_hidden, "size_fraction": thin_hidden / dense_hidden,
                 "detail": {"width": width, "whole_model_budget": int(whole)}}


def _train_registered(net, ds, *, method, size_fraction, rank, recipe, **_):
    """A registered method at the planned layout, trained from scratch (pruning: gradually)."""
    shapes = hidden_shapes(net)
    layout = plan(method, shapes, size_fraction=size_fraction, rank=rank)
    net = compress(net, method=method, size_fraction=size_fraction, layers=list(shapes), init="random",
                   seed=recipe["seed"], layout=layout["detail"])
    step_fn = finish = None
    if methods.get(method).gradual:              # start dense; the schedule shrinks each mask to its planned nnz
        mods = {k: mod for k, mod in net.named_modules() if k in shapes}
        for mod in mods.values():
            mod.parametrizations.weight[0].mask.fill_(1.0)
        steps = recipe["epochs"] * -(-len(ds.y_train) // recipe["batch_size"])
        step_fn, finish, _ = gradual_step(mods, total_steps=steps,
                                          keep={k: d["nnz"] for k, d in layout["detail"].items()})
    train.fit(net, ds.X_train, ds.y_train, step_fn=step_fn, desc=f"{method} {size_fraction:.3g}", **recipe)
    if finish is not None:                       # too few steps to reach the schedule's end
        finish()
    return net, layout


_TRAIN = {"dense": _train_dense, "narrow": _train_narrow}


def _eval_arrays(ds, splits):
    X = np.concatenate([getattr(ds, f"X_{s}") for s in splits])
    y = np.concatenate([getattr(ds, f"y_{s}") for s in splits])
    return X, y


def train_subset(n_train: int, max_train: int | None) -> np.ndarray | None:
    """Sorted indices of the training clips a run may use: all (``None``) when ``max_train`` is ``None``
    or ≥ ``n_train``, else a fixed random ``max_train`` of them, the same for every method and seed (so a
    comparison stays paired) and sorted (so a memory-mapped set is read in file order).

    Taught in: 03_deepthin
    """
    if max_train is None:
        return None
    if isinstance(max_train, bool) or not isinstance(max_train, (int, np.integer)) or max_train < 1:
        raise ValueError(f"max_train={max_train!r} must be a whole number ≥ 1 (clips per training run), or None "
                         "for the whole training split")
    if max_train >= n_train:
        return None
    return np.sort(np.random.default_rng(0).choice(n_train, size=int(max_train), replace=False))


def _capped(ds, keep):
    """``ds`` with its training split cut to rows ``keep`` (read into memory, float32)."""
    import copy

    out = copy.copy(ds)
    out.X_train = np.asarray(ds.X_train[keep], dtype=np.float32)
    for name in ("y_train", "speakers_train", "files_train"):
        if hasattr(ds, name):
            setattr(out, name, np.asarray(getattr(ds, name))[keep])
    return out


def train_compressed(ds, *, method: str, size_fraction: float = 1.0, seed: int = 0, epochs: int = 20,
                     model: str = "dnn", model_kwargs: dict | None = None, lr: float = 3e-3, batch_size: int = 64,
                     eval_splits=("test",), keep_model: bool = False, progress: bool = False, device=None,
                     max_train: int | None = None, rank=None) -> dict:
    """Train ``model`` from scratch with ``method`` at ``size_fraction`` of its hidden layers' bytes.

    Parameters
    ----------
    ds : a dataset from :func:`thinlab.data.load_dataset`
    method : one of :data:`METHODS`
    size_fraction : compressed / dense bytes of the DNN's hidden Linear weights (ignored for "dense")
    seed : seeds the initialisation, the batches, the hash / shuffle seed
    epochs, lr, batch_size : the training recipe, the same for every method
    eval_splits : splits scored together (e.g. ``("val", "test")`` when nothing is chosen on val)
    keep_model : also return the trained model under ``"model"``
    device : where to train and evaluate (see :func:`thinlab.train.resolve_device`; ``None``: the CPU)
    max_train : at most this many training clips per run (:func:`train_subset`: a fixed random subset,
        the same for every method and seed); ``None`` (default) trains on the whole split. On the full
        data sets it keeps a many-run comparison within reach of a 2-core machine.
    rank : DeepThin methods only: None (the library default, r = 1), ``"max"`` (the largest rank that
        fits each layer) or an int cap, see :func:`thinlab.deepthin.plan_network`

    Returns
    -------
    dict with ``method``, ``size_fraction`` (asked), ``achieved_fraction``, ``seed``, ``acc`` (on the
    eval splits), ``n_eval``, ``bytes`` (the hidden weights as stored), ``total_bytes`` (every
    stored tensor), ``seconds``, ``detail`` (see :func:`plan`), ``n_train`` (training clips used).

    Taught in: 03_deepthin
    """
    if model != "dnn":
        raise ValueError(f"model={model!r}: the comparison compresses the hidden layers of the 'dnn'")
    _check_method(method, rank)
    kw = dict(model_kwargs or {})
    keep = train_subset(len(ds.y_train), max_train)
    if keep is not None:
        ds = _capped(ds, keep)
    n_classes, (_, n_frames, n_mels) = len(ds.labels), np.shape(ds.X_train)  # .shape: no read of a memory map
    t_start = time.perf_counter()
    train.seed_everything(seed)
    net = build_model(model, n_classes, n_frames=n_frames, n_mels=n_mels, **kw)
    recipe = dict(epochs=epochs, seed=seed, lr=lr, batch_size=batch_size, progress=progress, device=device)
    net, layout = _TRAIN.get(method, _train_registered)(net, ds, method=method, size_fraction=size_fraction,
                                                        rank=rank, model=model, model_kwargs=kw, recipe=recipe)
    report = {r.name: r.bytes for r in size_report(net).layers}
    stored = sum(report[f"{k}.weight"] for k in hidden_shapes(net))
    if stored != layout["bytes"]:
        raise RuntimeError(f"{method}: the trained model stores {stored:,} bytes in its hidden weights but the plan "
                           f"said {layout['bytes']:,}")
    X, y = _eval_arrays(ds, eval_splits)
    hits = train.predict(net, X) == y                                  # per clip, for paired speaker-aware verdicts
    acc = float(hits.mean())
    out = {"method": method, "size_fraction": float(size_fraction) if layout["detail"] else 1.0,
           "achieved_fraction": layout["size_fraction"], "seed": int(seed), "acc": acc, "n_eval": int(len(y)),
           "hits": hits, "speakers": np.concatenate([np.asarray(getattr(ds, f"speakers_{s}", [""] * len(getattr(ds, f"y_{s}"))))
                                                     for s in eval_splits]).astype(str),
           "bytes": stored, "total_bytes": size_report(net).total_bytes,
           "seconds": round(time.perf_counter() - t_start, 2), "detail": layout["detail"],
           "n_train": int(len(ds.y_train))}
    if keep_model:
        out["model"] = net
    return out


def summarize(rows) -> list[dict]:
    """Mean and standard deviation (over seeds, ddof=1; 0 for one seed) of ``acc`` per (method, size_fraction).

    Taught in: 03_deepthin
    """
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["method"], r["size_fraction"]), []).append(r)
    out = []
    for (method, frac), rs in groups.items():
        acc = np.array([r["acc"] for r in rs])
        out.append({"method": method, "size_fraction": frac, "factor": round(1 / frac),
                    "bytes": int(np.mean([r["bytes"] for r in rs])), "acc_mean": float(acc.mean()),
                    "acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, "n_seeds": len(acc)})
    return out


def relative_improvement(summary, *, reference: str = "deepthin") -> list[dict]:
    """The paper's Table 1 on our task: (error_method − error_reference) / error_method per size.

    Error = 1 − accuracy (of the seed means); positive means ``reference`` makes fewer errors.
    ``acc_diff`` = reference − method accuracy, ``se`` its standard error over seeds
    (√(s_ref²/k_ref + s²/k)), and ``verdict``: "better" / "worse" when ``|acc_diff| > 2·se``, else
    "within noise" (with one seed there is no se: every nonzero difference gets a verdict).

    Taught in: 03_deepthin
    """
    by = {(s["method"], s["size_fraction"]): s for s in summary}
    out = []
    for method, frac, ref, s in against(by, reference):
        err, err_ref = 1 - s["acc_mean"], 1 - ref["acc_mean"]
        diff = ref["acc_mean"] - s["acc_mean"]
        se = math.sqrt(ref["acc_std"] ** 2 / ref["n_seeds"] + s["acc_std"] ** 2 / s["n_seeds"])
        verdict = "within noise" if abs(diff) <= 2 * se else ("better" if diff > 0 else "worse")
        out.append({"method": method, "size_fraction": frac, "factor": round(1 / frac),
                    "relative_improvement": (err - err_ref) / err if err > 0 else float("nan"),
                    "acc_diff": diff, "se": se, "verdict": verdict})
    return out


def paired_verdicts(runs, *, reference: str = "deepthin") -> list[dict]:
    """Each method against ``reference`` at each size, judged on the same clips by a paired bootstrap
    over speakers (:func:`thinlab.stats.paired_compare`), with per-clip correctness averaged over seeds.

    ``runs``: rows of :func:`train_compressed` (each holds ``hits`` and ``speakers``). Every row has
    ``method``, ``size_fraction``, ``factor``, ``relative_improvement`` (the paper's Table 1 measure,
    from the seed means), ``acc_diff`` (reference − method), ``low`` / ``high`` (its 95 % paired
    interval), ``n_seeds`` and ``verdict`` ("better" / "worse" for the reference, or "within noise").
    Unlike :func:`relative_improvement`'s spread over seeds, this counts how few speakers the test
    split has: a difference that rests on one voice is not evidence.

    Taught in: 03_deepthin
    """
    from thinlab import stats

    groups: dict = {}
    for r in runs:
        if "hits" not in r:
            raise ValueError("paired_verdicts needs the per-clip 'hits' that train_compressed returns; rerun it")
        groups.setdefault((r["method"], r["size_fraction"]), []).append(r)
    out = []
    for method, frac, ref, rs in against(groups, reference):
        spk = np.asarray(ref[0]["speakers"])
        a = np.stack([np.asarray(r["hits"], dtype=float) for r in ref])
        b = np.stack([np.asarray(r["hits"], dtype=float) for r in rs])
        c = stats.paired_compare(a, b, spk, a=reference, b=method)
        err, err_ref = 1 - c.acc_b, 1 - c.acc_a
        out.append({"method": method, "size_fraction": frac, "factor": round(1 / frac),
                    "relative_improvement": (err - err_ref) / err if err > 0 else float("nan"),
                    "acc_diff": c.diff, "low": c.low, "high": c.high, "n_seeds": len(rs), "n_clips": c.n_clips,
                    "n_speakers": c.n_speakers, "verdict": c.verdict})
    return out
