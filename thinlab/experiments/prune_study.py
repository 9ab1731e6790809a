"""Lesson 01's experiments: energy tables, one-shot sweeps, sensitivity, CSR costs, structured vs
unstructured, gradual vs one shot, and the explorer's plain table.

Each function is what a lesson-01 cell used to do inline; the kernels stay in :mod:`thinlab.prune`
and :mod:`thinlab.nn.pruning`, these only run and tabulate them. Scores are callables ``model ->
accuracy`` (the lesson passes :meth:`thinlab.experiments.setup.Lesson.test_acc` / ``val_acc``).

Taught in: 01_pruning
"""
from __future__ import annotations

import copy
import time

import numpy as np

from thinlab import prune, train
from thinlab.size import index_bytes


def threshold(W: np.ndarray, sparsity: float) -> float:
    """The largest magnitude magnitude pruning removes at ``sparsity`` (0.0 when nothing is pruned).

    Taught in: 01_pruning
    """
    if sparsity <= 0:
        return 0.0
    pruned = ~prune.magnitude_mask(W, sparsity=sparsity)
    return float(np.abs(W[pruned]).max()) if pruned.any() else 0.0


def layer_table(W: dict) -> list[dict]:
    """One row per layer of ``W`` (name → (Q, R)): shape, weights and share of all weights.

    Taught in: 01_pruning
    """
    n_all = sum(w.size for w in W.values())
    return [{"layer": n, "W (Q, R)": w.shape, "weights": w.size, "share of weights": round(w.size / n_all, 4)}
            for n, w in W.items()]


def energy_table(W: dict, sparsity: float) -> list[dict]:
    """Per layer: max |w|, the pruning threshold t, and the share of ‖W‖² magnitude pruning removes.

    The share of energy pruned is ‖W − Ŵ‖² / ‖W‖² of the pruned Ŵ; well below ``sparsity`` means a
    small share of the weights carries most of the energy.

    Taught in: 01_pruning
    """
    rows = []
    for n, w in W.items():
        pruned = prune.magnitude_prune(w, sparsity=sparsity)
        rows.append({"layer": n, "max |w|": float(np.abs(w).max()), "t": threshold(w, sparsity),
                     "share of weights pruned": sparsity,
                     "share of energy pruned": float(1 - (pruned ** 2).sum() / (w ** 2).sum())})
    return rows


def input_keep_map(W0: np.ndarray, sparsity: float, n_mels: int) -> np.ndarray:
    """Share of each input's weights that magnitude pruning keeps, as an image (time steps, mel bands).

    ``W0`` is the first dense layer (Q, R) whose Q inputs are the stacked (time step, mel band) features.

    Taught in: 01_pruning
    """
    kept = prune.magnitude_mask(W0, sparsity=sparsity).mean(axis=1)  # (Q,) share kept per input
    return kept.reshape(-1, n_mels)                                    # (Q,) → (time steps, mel bands)


def one_shot_sweep(model, *, sparsities, layers, score, scopes=("layer", "global")) -> dict:
    """Prune ``layers`` of ``model`` at each sparsity and scope (no retraining); score and count bytes.

    Returns
    -------
    dict: ``rows`` (``sparsity``, ``scope``, ``test accuracy``, ``bytes``), ``dense_bytes``, ``larger``
    (sparsities at which a pruned model stores more bytes than the dense one).

    Taught in: 01_pruning
    """
    from thinlab.nn import pruning, size_report

    dense = size_report(model).total_bytes
    rows = []
    for s in sparsities:
        for scope in scopes:
            m = pruning.prune_model(model, sparsity=s, layers=layers, scope=scope)
            rows.append({"sparsity": s, "scope": scope, "test accuracy": float(score(m)),
                         "bytes": size_report(m).total_bytes})
    return {"rows": rows, "dense_bytes": dense, "larger": sorted({r["sparsity"] for r in rows if r["bytes"] > dense})}


def global_layer_sparsity(model, *, sparsity: float, layers) -> dict:
    """Per-layer sparsity that one global magnitude threshold at ``sparsity`` gives ``layers``.

    Taught in: 01_pruning
    """
    from thinlab.nn import layer_masks, pruning

    g = pruning.prune_model(model, sparsity=sparsity, layers=layers, scope="global")
    return {n: round(float(1 - m.mean()), 3) for n, m in layer_masks(g).items()}


def layer_sensitivity(model, *, sparsities, score, layers=None) -> dict:
    """Prune one layer at a time (the others intact) at each sparsity and score the model.

    ``score(model) -> accuracy`` (validation: choices are made on validation). Returns ``scan`` (rows
    ``layer``, ``sparsity``, ``score``), ``at_max`` (layer → score at the largest sparsity),
    ``most_sensitive`` and ``least_sensitive``.

    Taught in: 01_pruning
    """
    from thinlab.nn import layer_weights, set_layer_weights

    W = layer_weights(model, layers=layers) if layers is not None else layer_weights(model)
    scratch = copy.deepcopy(model)
    scan = prune.sensitivity_scan(W, lambda w: score(set_layer_weights(scratch, w)), sparsities=sparsities)
    at_max = {r["layer"]: r["score"] for r in scan if r["sparsity"] == max(sparsities)}
    return {"scan": scan, "at_max": at_max, "most_sensitive": min(at_max, key=at_max.get),
            "least_sensitive": max(at_max, key=at_max.get)}


def layer_scorer(model, W: dict, name: str, score):
    """``evaluate(w_pruned) -> score`` for one layer: the model with layer ``name`` set to ``w_pruned``.

    ``W`` holds every layer's dense (Q, R) weights; a scratch copy of ``model`` is loaded each call.

    Taught in: 01_pruning
    """
    from thinlab.nn import set_layer_weights

    scratch = copy.deepcopy(model)
    return lambda w_pruned: float(score(set_layer_weights(scratch, {**W, name: w_pruned})))


def scipy_csr_bytes(shape, nnz: int) -> int:
    """Bytes scipy's CSR takes for a float32 (rows, cols) matrix: 4-byte values and indices, int32 pointers.

    Taught in: 01_pruning
    """
    return 8 * int(nnz) + 4 * (int(shape[0]) + 1)


def csr_costs(shape, *, n_grid: int = 201, Ns=(2, 4, 10, 20, 50, 100)) -> dict:
    """Where CSR pays off for a float32 ``shape`` (rows, cols): break-even densities and cost curves.

    Returns
    -------
    dict: ``break_even_density`` (indices at their real width), ``break_even_density_int32`` (scipy),
    ``bitmask_beats_csr_above_density``, ``curve`` (rows ``density``, ``format``, ``bytes / dense``),
    ``per_N`` (rows: keeping 1/N of the weights costs this many times 1/N of the dense bytes).

    Taught in: 01_pruning
    """
    rows_, cols = shape
    size, dense = rows_ * cols, 4 * rows_ * cols
    be32 = (dense - 4 * (rows_ + 1)) // 8 / size
    grid = np.linspace(0, 1, n_grid)
    nnz = np.round(grid * size).astype(np.int64)
    fmts = {"dense": np.full(n_grid, dense), "CSR (thinlab)": [prune.csr_bytes(shape, int(k)) for k in nnz],
            "CSR (scipy, int32)": [scipy_csr_bytes(shape, k) for k in nnz],
            "values + bitmask": [prune.masked_bytes(shape, int(k)) for k in nnz]}
    curve = [{"density": float(d), "format": f, "bytes / dense": float(b[i]) / dense}
             for i, d in enumerate(grid) for f, b in fmts.items()]
    wins = np.asarray(fmts["values + bitmask"]) < np.asarray(fmts["CSR (thinlab)"])
    per_N = [{"keep 1/N, N =": N, "CSR thinlab (× 1/N)": prune.csr_bytes(shape, round(size / N)) / dense * N,
              "CSR scipy (× 1/N)": scipy_csr_bytes(shape, round(size / N)) / dense * N} for N in Ns]
    return {"shape": list(shape), "break_even_density": prune.csr_break_even_density(shape),
            "break_even_density_int32": be32,
            "bitmask_beats_csr_above_density": float(grid[wins].min()) if wins.any() else None,
            "curve": curve, "per_N": per_N, "col_index_bytes": index_bytes(cols - 1)}


def ms_per_batch(model, x, *, reps: int = 20) -> float:
    """Milliseconds per forward pass of batch ``x`` on the CPU (one warm-up call, then ``reps`` timed).

    Taught in: 01_pruning
    """
    import torch

    model = copy.deepcopy(model).cpu().eval()
    x = torch.as_tensor(x)
    with torch.no_grad():
        model(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(x)
    return 1000 * (time.perf_counter() - t0) / reps


def structured_vs_unstructured(model, ds, *, neuron_sparsity: float, layers, finetune_epochs: int, score,
                               seed: int = 0, time_batch: int = 64, progress: bool = True) -> dict:
    """Remove ``neuron_sparsity`` of each hidden layer's units; prune ``layers`` unstructured to at most
    the same bytes; score both after pruning and after ``finetune_epochs`` of fine-tuning each.

    Returns
    -------
    dict: ``structured`` and ``unstructured`` (fine-tuned models), ``hidden`` (units before → after),
    ``bytes`` / ``un_bytes``, ``un_sparsity``, ``ms`` (forward pass of ``time_batch`` test clips, per model),
    ``rows`` (``model``, ``stage``, ``test accuracy``) and ``acc`` keyed by (model, stage).

    Taught in: 01_pruning
    """
    from thinlab.nn import layer_masks, pruning, size_report

    small, _ = pruning.shrink_dnn(model, sparsity=neuron_sparsity)
    small_bytes = size_report(small).total_bytes
    un = pruning.prune_to_bytes(model, n_bytes=small_bytes, layers=layers)
    masks = layer_masks(un)
    un_sparsity = 1 - sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values())
    x = ds.X_test[:time_batch]
    ms = {k: ms_per_batch(m, x) for k, m in [("dense", model), ("unstructured (masked)", un), ("structured", small)]}
    pair = [("structured", small), ("unstructured", un)]
    rows = [{"model": k, "stage": "after pruning", "test accuracy": float(score(m))} for k, m in pair]
    for k, m in pair:
        train.finetune(m, ds.X_train, ds.y_train, epochs=finetune_epochs, seed=seed, desc=f"fine-tune {k}",
                       progress=progress)
        rows.append({"model": k, "stage": "fine-tuned", "test accuracy": float(score(m))})
    return {"structured": small, "unstructured": un, "bytes": small_bytes, "un_bytes": size_report(un).total_bytes,
            "hidden": ([l.out_features for l in model.hidden], [l.out_features for l in small.hidden]),
            "un_sparsity": float(un_sparsity), "ms": ms, "rows": rows,
            "acc": {(r["model"], r["stage"]): r["test accuracy"] for r in rows}}


def gradual_vs_one_shot(model, ds, *, target_sparsity: float, finetune_epochs: int, layers, score, seed: int = 0,
                        progress: bool = True) -> dict:
    """Prune ``layers`` to ``target_sparsity`` in one shot then fine-tune, and gradually (Zhu & Gupta) with
    the same epochs.

    Returns
    -------
    dict: ``one_shot`` / ``gradual`` (models), ``acc_cut`` (one shot, before fine-tuning), ``acc_one``,
    ``acc_grad``, ``bytes`` (the same for both), ``factor`` (printable compression factor), ``schedule``
    (rows ``step``, ``sparsity``) and ``curves`` (validation accuracy per epoch per run).

    Taught in: 01_pruning
    """
    from thinlab.experiments.gradual import gradual_prune
    from thinlab.nn import pruning, size_report

    one = pruning.prune_model(model, sparsity=target_sparsity, layers=layers)
    acc_cut = float(score(one))
    h_one = train.finetune(one, ds.X_train, ds.y_train, ds.X_val, ds.y_val, epochs=finetune_epochs, seed=seed,
                           desc="one shot + fine-tune", progress=progress)
    grad, h_grad, schedule = gradual_prune(model, ds.X_train, ds.y_train, ds.X_val, ds.y_val,
                                           final_sparsity=target_sparsity, epochs=finetune_epochs, layers=layers,
                                           seed=seed, progress=progress)
    rep = size_report(grad)
    assert rep.total_bytes == size_report(one).total_bytes, "same sparsity must give the same bytes"
    curves = [{"epoch": r["epoch"], "run": run, "val accuracy": r["val_acc"]}
              for run, h in [("one shot + fine-tune", h_one), ("gradual", h_grad)] for r in h.rows()]
    return {"one_shot": one, "gradual": grad, "acc_cut": acc_cut, "acc_one": float(score(one)),
            "acc_grad": float(score(grad)), "bytes": rep.total_bytes, "factor": rep.factor(),
            "schedule": schedule, "curves": curves}


def explorer_table(W: np.ndarray, *, sparsities, evaluate) -> list[dict]:
    """The plain calls the prune explorer wraps, per sparsity: threshold, CSR and bitmask bytes, score.

    ``evaluate(w_pruned) -> accuracy`` (e.g. :func:`layer_scorer`).

    Taught in: 01_pruning
    """
    rows = []
    for s in sorted(set(sparsities)):
        wp = prune.magnitude_prune(W, sparsity=s)
        nnz = int(np.count_nonzero(wp))
        rows.append({"sparsity": s, "threshold": threshold(W, s), "CSR bytes": prune.csr_bytes(wp.shape, nnz),
                     "bitmask bytes": prune.masked_bytes(wp.shape, nnz), "val accuracy": evaluate(wp)})
    return rows
