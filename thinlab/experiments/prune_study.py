"""Lesson 01's experiments: energy tables, one-shot sweeps, the three baselines pruned alike
(:func:`model_sweep`, with the LSTM's matrices reachable through :class:`LinearLSTM`), sensitivity, CSR
costs, structured vs unstructured, gradual vs one shot over seeds, the explorer's plain table, and
the design challenge (a sparsity per layer: :func:`plan_bytes`, :func:`plan_from_scan`,
:func:`challenge_check`).

Each function is what a lesson-01 cell used to do inline; the kernels stay in :mod:`thinlab.prune`
and :mod:`thinlab.nn.pruning`, these only run and tabulate them. Scores are callables ``model ->
accuracy`` (the lesson passes :meth:`thinlab.experiments.setup.Lesson.test_acc` / ``val_acc``).

Taught in: 01_pruning
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

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


# ── the three baselines pruned alike ─────────────────────────────────────────────────────────────────

class LinearLSTM(nn.Module):
    """An ``nn.LSTM`` (one layer, batch first) whose two weight matrices live in ``nn.Linear`` modules
    ``ih`` (inputs → 4·hidden gates) and ``hh`` (hidden → 4·hidden), so masks, ``size_report`` and
    fine-tuning treat them like any other layer. Same parameters, same outputs (``torch.lstm``).

    Taught in: 01_pruning
    """

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        if lstm.num_layers != 1 or lstm.bidirectional or not lstm.batch_first or lstm.proj_size:
            raise ValueError("LinearLSTM takes a one-layer, one-direction, batch_first LSTM without projection")
        self.hidden_size = lstm.hidden_size
        self.ih = nn.Linear(lstm.input_size, 4 * lstm.hidden_size, bias=lstm.bias)
        self.hh = nn.Linear(lstm.hidden_size, 4 * lstm.hidden_size, bias=lstm.bias)
        with torch.no_grad():
            self.ih.weight.copy_(lstm.weight_ih_l0)
            self.hh.weight.copy_(lstm.weight_hh_l0)
            if lstm.bias:
                self.ih.bias.copy_(lstm.bias_ih_l0)
                self.hh.bias.copy_(lstm.bias_hh_l0)

    def forward(self, x):
        h0 = x.new_zeros(1, x.shape[0], self.hidden_size)        # (layers, B, hidden)
        params = [self.ih.weight, self.hh.weight] + ([self.ih.bias, self.hh.bias] if self.ih.bias is not None else [])
        out, h, c = torch.lstm(x, (h0, h0), params, self.ih.bias is not None, 1, 0.0, self.training, False, True)
        return out, (h, c)


def linear_lstm(model):
    """A copy of ``model`` whose ``nn.LSTM`` modules are :class:`LinearLSTM` (same weights, same outputs),
    so magnitude pruning reaches the LSTM's two weight matrices; other models are copied unchanged.

    Taught in: 01_pruning
    """
    model = copy.deepcopy(model)
    for mod in list(model.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.LSTM):
                setattr(mod, child_name, LinearLSTM(child).to(next(child.parameters()).device))
    return model


def prunable_layers(model) -> list[str]:
    """The weight layers magnitude pruning acts on in this lesson: every ``Linear`` and ``Conv2d`` (an LSTM's
    two matrices after :func:`linear_lstm`) except the output layer (the last one), which stays dense.

    Taught in: 01_pruning
    """
    from thinlab.nn import compressible_layers

    names = compressible_layers(model, kinds=(nn.Linear, nn.Conv2d))
    if len(names) < 2:
        raise ValueError(f"the model has weight layers {names}; pruning needs at least one besides the output layer")
    return names[:-1]


def model_sweep(models: dict, *, sparsities, score, ds=None, finetune_epochs: int = 0, seed: int = 0,
                progress: bool = True, select=None, hits=None) -> dict:
    """Magnitude pruning (per layer) of every model in ``models`` (name → model) at each sparsity, over
    its :func:`prunable_layers` (LSTMs through :func:`linear_lstm`), then ``finetune_epochs`` of
    fine-tuning on ``ds`` (masks fixed; 0: none).

    ``score(model)`` is the reported accuracy (the test speakers in lesson 01); ``select(model)``, if
    given, the one choices are made on (validation), stored as ``val accuracy``; ``hits(model)``, if
    given, the per-clip correctness behind ``score`` (for paired comparisons), stored as ``hits``.

    Returns
    -------
    dict: ``rows`` (``model``, ``sparsity``, ``one shot``, ``fine-tuned`` (absent without fine-tuning),
    ``test accuracy`` (the last of the two), ``bytes``, and ``val accuracy`` / ``hits`` when asked
    for; sparsity 0 is the dense model), ``layers`` (model → pruned layers).

    Taught in: 01_pruning
    """
    from thinlab.nn import pruning, size_report

    if finetune_epochs and ds is None:
        raise ValueError(f"finetune_epochs={finetune_epochs} needs ds= (the dataset to fine-tune on)")

    def extra(m) -> dict:
        return {**({"val accuracy": float(select(m))} if select else {}), **({"hits": np.asarray(hits(m))} if hits else {})}
    rows, layers = [], {}
    for name, model in models.items():
        m = linear_lstm(model)
        layers[name] = prunable_layers(m)
        acc = float(score(m))
        rows.append({"model": name, "sparsity": 0.0, "one shot": acc, **({"fine-tuned": acc} if finetune_epochs else {}),
                     "test accuracy": acc, "bytes": size_report(m).total_bytes, **extra(m)})
        for s in sorted(x for x in set(sparsities) if x > 0):
            p = pruning.prune_model(m, sparsity=s, layers=layers[name])
            row = {"model": name, "sparsity": s, "one shot": float(score(p))}
            if finetune_epochs:
                train.finetune(p, ds.X_train, ds.y_train, epochs=finetune_epochs, seed=seed, progress=progress,
                               desc=f"fine-tune {name} at {s:g}")
                row["fine-tuned"] = float(score(p))
            rows.append({**row, "test accuracy": row.get("fine-tuned", row["one shot"]),
                         "bytes": size_report(p).total_bytes, **extra(p)})
    return {"rows": rows, "layers": layers}


#: the keys of a :func:`best_under_budgets` row that are not model names
_BUDGET_KEYS = ("budget", "winner", "test accuracy", "bytes", "sparsity", "model bytes", "model hits", "chosen on")


def best_under_budgets(rows, budgets, *, choose: str = "test accuracy") -> list[dict]:
    """Per byte budget, each model's best row that fits and the most accurate of those.

    Each model's row is picked by ``choose`` (``"val accuracy"``: the validation speakers choose the
    sparsity, as lesson 01 does; the default, ``"test accuracy"``, picks on the reported score), the
    fewer bytes breaking a tie; the **winner** is the model whose picked row has the highest test
    accuracy (then the fewer bytes); ``None`` entries where nothing fits.

    Each entry has ``budget``, ``winner``, ``test accuracy``, ``bytes``, ``sparsity`` (the winner's
    picked row), each model's picked test accuracy under its own name (``None`` if none of its rows
    fits), ``model bytes`` and, when the rows carry ``hits``, ``model hits`` (model → that row's
    bytes / per-clip hits), and ``chosen on``.

    Taught in: 01_pruning
    """
    out = []
    for b in sorted(budgets):
        fit = [r for r in rows if r["bytes"] <= b]
        picked = {m: max(rs, key=lambda r: (r[choose], -r["bytes"]))
                  for m in dict.fromkeys(r["model"] for r in rows) for rs in [[r for r in fit if r["model"] == m]] if rs}
        best = max(picked.values(), key=lambda r: (r["test accuracy"], -r["bytes"]), default=None)
        row = {"budget": b, "winner": best["model"] if best else None,
               "test accuracy": best["test accuracy"] if best else None, "bytes": best["bytes"] if best else None,
               "sparsity": best.get("sparsity") if best else None, "model bytes": {}, "chosen on": choose}
        if any("hits" in r for r in picked.values()):
            row["model hits"] = {m: r["hits"] for m, r in picked.items() if "hits" in r}
        for m in sorted({r["model"] for r in rows}):
            row[m] = picked[m]["test accuracy"] if m in picked else None
            if m in picked:
                row["model bytes"][m] = picked[m]["bytes"]
        out.append(row)
    return out


def budget_verdicts(best: list[dict], compare) -> list[dict]:
    """Per budget of :func:`best_under_budgets` where two models or more fit: the winner against the
    runner-up (the next highest test accuracy), a speaker-aware paired comparison of their per-clip
    ``model hits`` (``compare(hits_a, hits_b, a=, b=)``, e.g. the lesson's ``L.compare``) and a
    sentence from :func:`thinlab.teach.interpret`.

    Rows ``{"budget", "winner", "runner_up", "comparison", "sentence"}``.
    Taught in: 01_pruning
    """
    from thinlab import teach

    out = []
    for r in best:
        hits = r.get("model hits", {})
        others = sorted((m for m in hits if m != r["winner"] and r.get(m) is not None), key=lambda m: -r[m])
        if r["winner"] is None or not others:
            continue
        w, ru = r["winner"], others[0]
        cmp = compare(hits[w], hits[ru], a=w, b=ru)
        out.append({"budget": r["budget"], "winner": w, "runner_up": ru, "comparison": cmp.as_dict(),
                    "sentence": f"under {teach.human_bytes(r['budget'])}: "
                                + teach.interpret(cmp, expected="better", claim=f"{w} against {ru}")})
    return out


def _why_level(r: dict, m: str, acc: float) -> str:
    """Why ``r["winner"]`` is named over ``m``, which prints the same accuracy (3 decimals)."""
    other = r.get("model bytes", {}).get(m)
    if other is not None and r["bytes"] < other:
        return "fewer bytes"
    if r["test accuracy"] > acc:
        return "ahead"
    return "tie"


def winners_text(best: list[dict], *, human=lambda b: f"{b:,} bytes") -> str:
    """One sentence per budget from :func:`best_under_budgets`: which model wins, and by how much.

    A model whose accuracy prints the same as the winner's (3 decimals) is "level with" it; the
    parenthesis then says why the winner is named: "for its fewer bytes" only when it has fewer bytes
    than that model, else "ahead by less than 0.001" when its unrounded accuracy is higher, else
    "the same accuracy and bytes" (a true tie).

    Taught in: 01_pruning
    """
    words = {"fewer bytes": "{w} is named for its fewer bytes", "ahead": "{w} is ahead by less than 0.001",
             "tie": "the same accuracy and bytes as {w}"}
    lines = []
    for r in best:
        if r["winner"] is None:
            lines.append(f"under {human(r['budget'])}: no model fits, even at the highest sparsity")
            continue
        w = r["winner"]
        others = {m: a for m, a in r.items() if m not in _BUDGET_KEYS and m != w and a is not None}
        level = {m: a for m, a in others.items() if round(a, 3) >= round(r["test accuracy"], 3)}   # ties, as printed
        behind = {m: a for m, a in others.items() if m not in level}
        vs = "" if others else ", the only model that fits"
        if level:
            why = {m: _why_level(r, m, a) for m, a in level.items()}
            if len(set(why.values())) == 1:               # one reason for all: said once, at the end
                vs += (", level with " + ", ".join(f"{m} {a:.3f}" for m, a in level.items())
                       + f" ({words[next(iter(why.values()))].format(w=w)})")
            else:
                vs += ", level with " + ", ".join(f"{m} {a:.3f} ({words[why[m]].format(w=w)})"
                                                  for m, a in level.items())
        if behind:
            vs += ", ahead of " + ", ".join(f"{m} {a:.3f}" for m, a in sorted(behind.items(), key=lambda kv: -kv[1]))
        how = "dense" if not r["sparsity"] else f"pruned to sparsity {r['sparsity']:g}"
        lines.append(f"under {human(r['budget'])}: {w} {how} ({human(r['bytes'])}) scores "
                     f"{r['test accuracy']:.3f}{vs}")
    return "\n".join(lines)


def energy_text(energy: list[dict], sparsity: float) -> str:
    """What the energy table says about concentration, with its words chosen from its numbers.

    Taught in: 01_pruning
    """
    kept = [1 - r["share of energy pruned"] for r in energy]
    lo, hi, share = min(kept), max(kept), 1 - sparsity
    head = (f"The largest {share:.0%} of each layer's weights hold {lo:.0%} to {hi:.0%} of its energy ‖W‖² "
            f"({lo / share:.1f}x to {hi / share:.1f}x their share of the weights)")
    if lo >= 0.5:
        return head + ": a small share of the weights carries most of the energy."
    if hi >= 0.5:
        return head + ": in some layers they carry most of the energy, in others they do not."
    return (head + ": more than their share, but not most of it. Magnitude pruning at this sparsity removes "
            "most of each layer's energy; whether the model cares is what accuracy (below) measures.")


# ── gradual against one shot, over seeds ─────────────────────────────────────────────────────────────

#: why gradual pruning can lose to (or tie with) one shot + fine-tuning here, quoted by the interpretation
GRADUAL_REASONS = (
    "both runs get the same number of epochs, so gradual trains at the final mask only after its schedule "
    "ends, while one shot fine-tunes the final mask for the whole budget",
    "the schedule's end point decides how long the final mask is trained; Zhu & Gupta prune over a much "
    "longer run than a few fine-tuning epochs",
    "the schedule reaches the target in a handful of mask updates, each a small one-shot cut",
    "the training set is small, so extra epochs at the final mask may matter more than a gentle schedule",
)


def gradual_vs_one_shot_seeds(model, ds, *, seeds, hits, target_sparsity: float, finetune_epochs: int, layers,
                              score, progress: bool = True) -> dict:
    """:func:`gradual_vs_one_shot` once per fine-tuning seed (the same trained ``model`` each time).

    ``hits(model) -> bool (N,)`` per test clip. Returns the last seed's run (models, schedule, bytes,
    ``acc_cut``) plus ``hits_one`` / ``hits_grad`` (seeds, N), ``acc_one`` / ``acc_grad`` (means over
    seeds), ``per_seed`` rows and ``curves`` averaged over seeds per epoch.

    Taught in: 01_pruning
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; pass at least one fine-tuning seed, e.g. [0, 1, 2]")
    runs, h1, hg, per_seed = [], [], [], []
    for sd in seeds:
        gv = gradual_vs_one_shot(model, ds, target_sparsity=target_sparsity, finetune_epochs=finetune_epochs,
                                 layers=layers, score=score, seed=sd, progress=progress)
        h1.append(np.asarray(hits(gv["one_shot"]), bool))
        hg.append(np.asarray(hits(gv["gradual"]), bool))
        per_seed.append({"seed": sd, "one shot": gv["acc_cut"], "one shot + fine-tune": gv["acc_one"],
                         "gradual": gv["acc_grad"]})
        runs.append(gv)
    curves = {}
    for gv in runs:
        for r in gv["curves"]:
            curves.setdefault((r["epoch"], r["run"]), []).append(r["val accuracy"])
    out = dict(runs[-1])
    out.update(hits_one=np.stack(h1), hits_grad=np.stack(hg), per_seed=per_seed, seeds=seeds,
               acc_one=float(np.mean([r["one shot + fine-tune"] for r in per_seed])),
               acc_grad=float(np.mean([r["gradual"] for r in per_seed])),
               curves=[{"epoch": e, "run": run, "val accuracy": float(np.mean(v))} for (e, run), v in curves.items()])
    return out


# ── the design challenge: a sparsity per layer ───────────────────────────────────────────────────────

def _shapes(model, layers) -> dict:
    from thinlab.nn import layer_weights

    return {n: w.shape for n, w in layer_weights(model, layers=layers).items()}


def _plan_sizer(model, layers):
    """``bytes(plan)`` for ``model`` with ``layers`` pruned by a plan: size_report's total, from the shapes."""
    from thinlab.nn import size_report

    rep = size_report(model)
    shapes = _shapes(model, list(layers))
    dense = {r.name: r.bytes for r in rep.layers}

    def nbytes(plan: dict) -> int:
        total = rep.total_bytes
        for n, s in plan.items():
            if n not in shapes:
                raise ValueError(f"plan names layer {n!r}; the layers to plan are {list(shapes)}")
            if not isinstance(s, (int, float, np.integer, np.floating)) or not 0 <= float(s) < 1:
                raise ValueError(f"plan[{n!r}] = {s!r}: a sparsity must be a number in [0, 1)")
            Q, R = shapes[n]
            nnz = Q * R - prune.n_pruned(Q * R, sparsity=float(s))
            total += prune.csr_bytes((R, Q), nnz) - dense[f"{n}.weight"]   # torch layout (out, in) = (R, Q)
        return int(total)

    return nbytes


def plan_bytes(model, plan: dict) -> int:
    """Bytes :func:`thinlab.nn.size_report` gives ``model`` with each layer of ``plan`` (name → sparsity)
    magnitude-pruned in CSR, computed from the shapes alone (no pruning).

    Taught in: 01_pruning
    """
    return _plan_sizer(model, list(plan))(plan)


def apply_plan(model, plan: dict):
    """A copy of ``model`` with each layer of ``plan`` (name → sparsity) magnitude-pruned (CSR masks).

    Taught in: 01_pruning
    """
    from thinlab.nn import apply_masks, layer_weights

    if not isinstance(plan, dict) or not plan:
        raise ValueError(f"plan must be a non-empty dict layer → sparsity, e.g. {{'hidden.0': 0.9}}; got {plan!r}")
    W = layer_weights(model, layers=list(plan))
    return apply_masks(model, {n: prune.magnitude_mask(w, sparsity=float(plan[n])) for n, w in W.items()})


def uniform_plan(model, layers, *, size_limit: int, step: float = 0.001) -> dict:
    """The same sparsity for every layer: the lowest multiple of ``step`` whose bytes fit ``size_limit``.

    Taught in: 01_pruning
    """
    sizer = _plan_sizer(model, layers)
    for k in range(int(round(1 / step))):
        plan = {n: round(k * step, 6) for n in layers}
        if sizer(plan) <= size_limit:
            return plan
    raise ValueError(f"no uniform sparsity below 1 fits {size_limit:,} bytes; raise the size limit")


def plan_from_scan(model, scan, *, size_limit: int, step: float = 0.01) -> dict:
    """A per-layer plan derived from a sensitivity scan: start dense, and repeatedly raise by ``step``
    the sparsity of the layer whose scanned score falls least per byte saved, until the model fits
    ``size_limit``. A layer's score between scanned sparsities is interpolated linearly; no layer goes
    past the largest scanned sparsity.

    Taught in: 01_pruning
    """
    layers = list(dict.fromkeys(r["layer"] for r in scan))
    curve = {n: sorted((r["sparsity"], r["score"]) for r in scan if r["layer"] == n) for n in layers}
    top = {n: c[-1][0] for n, c in curve.items()}

    def drop(n, s):
        xs, ys = zip(*curve[n])
        return ys[0] - float(np.interp(s, xs, ys))

    sizer = _plan_sizer(model, layers)
    plan = {n: 0.0 for n in layers}
    while sizer(plan) > size_limit:
        now = sizer(plan)
        best, key = None, None
        for n in layers:
            s = min(round(plan[n] + step, 6), top[n])
            if s <= plan[n]:
                continue
            saved = now - sizer({**plan, n: s})
            if saved <= 0:
                continue
            k = (drop(n, s) - drop(n, plan[n])) / saved
            if key is None or k < key:
                best, key = (n, s), k
        if best is None:
            raise ValueError(f"the scanned sparsities (up to {max(top.values())}) cannot reach {size_limit:,} bytes; "
                             "scan higher sparsities or raise the size limit")
        plan[best[0]] = best[1]
    return plan


def challenge_check(model, plan: dict, *, score, size_limit: int, accuracy_bar: float, name: str, ds=None,
                    finetune_epochs: int = 0, seed: int = 0, progress: bool = True):
    """Prune ``model`` by ``plan``, fine-tune it ``finetune_epochs`` on ``ds`` (masks fixed), and check it
    against the challenge: bytes from ``size_report``, accuracy from ``score``.

    Returns ``(teach.Challenge, pruned model)``.

    Taught in: 01_pruning
    """
    from thinlab import teach
    from thinlab.nn import size_report

    pruned = apply_plan(model, plan)
    if finetune_epochs:
        if ds is None:
            raise ValueError(f"finetune_epochs={finetune_epochs} needs ds= (the dataset to fine-tune on)")
        train.finetune(pruned, ds.X_train, ds.y_train, epochs=finetune_epochs, seed=seed, progress=progress,
                       desc="fine-tune your plan")
    return teach.challenge(name, bytes_=size_report(pruned).total_bytes, accuracy=float(score(pruned)),
                           size_limit=size_limit, accuracy_bar=accuracy_bar), pruned
