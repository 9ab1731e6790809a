"""The full compression pipeline on the DNN, stage by stage, and knowledge distillation.

Stages (each one applied to the previous stage's model):

1. **prune**: structured pruning of hidden units (:func:`thinlab.nn.pruning.shrink_dnn`): a new,
   narrower plain DNN (built with :func:`thinlab.models.build_model`, so it can be saved),
2. **factorize**: low rank or DeepThin factors for the hidden layers (:func:`thinlab.nn.compress`),
3. **quantize**: the stored factors quantised per row to ``n_bits`` (``quant_bits``: packed codes +
   one float32 scale per row) and every plain Linear left (the output layer) fake-quantised too.

Each stage can be followed by fine-tuning (fake-quantised with a straight-through estimator in
stage 3). Bytes always come from :func:`thinlab.nn.size_report` on the whole model (biases and
input statistics included), so the factor of a stage is honestly ``bytes before / bytes after``.

Distillation (Hinton, Vinyals & Dean 2015): the student learns from the teacher's softened outputs,
``loss = α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α)·CE(s, y)``.

Taught in: 06_pipeline
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from thinlab import train
from thinlab.nn import methods
from thinlab.nn.compress import compress, size_report
from thinlab.nn.parametrizations import _check_bits
from thinlab.train import finetune
from thinlab.nn.pruning import shrink_dnn

STAGES = ("dense", "prune", "factorize", "quantize")


def hidden_layers(model: nn.Module) -> list[str]:
    """Names of a DNN's hidden Linear layers (``hidden.0`` …), the ones stage 2 factorises.

    Taught in: 06_pipeline
    """
    if not hasattr(model, "hidden"):
        raise TypeError(f"expected a thinlab DNN (build_model('dnn', ...)), got {type(model).__name__}")
    return [f"hidden.{i}" for i in range(len(model.hidden))]


def model_bytes(model: nn.Module) -> int:
    """Every stored byte of ``model`` (:func:`thinlab.nn.size_report` total). Taught in: 06_pipeline"""
    return int(size_report(model).total_bytes)


def stage_prune(model: nn.Module, *, keep) -> nn.Module:
    """Stage 1: keep ``keep`` hidden units per layer (int or one per layer), smallest L1 norm removed.

    Returns a new, narrower, plain DNN. Taught in: 06_pipeline
    """
    small, _ = shrink_dnn(model, keep=keep)
    return small


def keep_for_factor(model: nn.Module, factor: float) -> int:
    """Most hidden units per layer for which stage 1 shrinks ``model`` by at least ``factor``.

    The factor is on the whole model's bytes (:func:`model_bytes`), which fall monotonically with
    the width, so a bisection over the width finds it with about log2(width) trial prunings.

    Taught in: 06_pipeline
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
        raise ValueError(f"factor={factor!r} must be a number ≥ 1 (bytes before / bytes after stage 1)")
    hidden_layers(model)
    width = max(layer.out_features for layer in model.hidden)
    target = model_bytes(model) / factor
    if model_bytes(stage_prune(model, keep=1)) > target:
        raise ValueError(f"even 1 unit per hidden layer keeps more than 1/{factor:g} of the model's bytes "
                         f"(the input statistics and output layer stay); ask for a smaller factor")
    lo, hi = 1, width                       # invariant: width lo fits; the answer is ≤ hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if model_bytes(stage_prune(model, keep=mid)) <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


def stage_factorize(model: nn.Module, *, method: str = "lowrank", size_fraction: float,
                    init: str = "project", seed: int = 0) -> nn.Module:
    """Stage 2: a copy whose hidden layers store ``method`` factors (``"lowrank"`` or ``"deepthin"``)
    at ``size_fraction`` of their float32 bytes, fitted to the current weights (``init="project"``:
    SVD projection) or freshly initialised for training from scratch (``init="random"``).

    Taught in: 06_pipeline
    """
    factorizers = tuple(n for n in methods.names("make") if methods.get(n).factorizes)
    if method not in factorizers:
        raise ValueError(f"method={method!r}; stage 2 factorises with one of {factorizers}")
    return compress(model, method=method, size_fraction=size_fraction, layers=hidden_layers(model), init=init,
                    seed=seed)


def stage_quantize(model: nn.Module, *, n_bits: int) -> nn.Module:
    """Stage 3: a copy whose compressed layers quantise their stored tensors to ``n_bits`` (per-row
    symmetric codes + float32 scales) and whose remaining plain Linear layers are fake-quantised to
    ``n_bits`` too. Biases and input statistics stay float32 (and are counted).

    Taught in: 06_pipeline
    """
    _check_bits(n_bits)
    model = copy.deepcopy(model)
    plain = []
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear) or ".parametrizations" in name:
            continue
        if parametrize.is_parametrized(mod, "weight"):
            P = mod.parametrizations.weight[0]
            if not methods.get(P.method).takes_quant_bits:
                takes = tuple(n for n in methods.names("make") if methods.get(n).takes_quant_bits)
                raise ValueError(f"layer {name!r} stores {P.method} values; stage 3 quantises the stored tensors of "
                                 f"{takes} only")
            P.quant_bits = n_bits  # the parametrization quantises its stored factors from now on
        else:
            plain.append(name)
    return compress(model, method="quant", n_bits=n_bits, layers=plain) if plain else model


def accuracy(model: nn.Module, X, y) -> float:
    """Accuracy of ``model`` on (X, y). Taught in: 06_pipeline"""
    return float(train.evaluate(model, X, y)["accuracy"])


def run_pipeline(teacher: nn.Module, X_train, y_train, X_eval, y_eval, *, keep, method: str = "lowrank",
                 size_fraction: float, n_bits: int, finetune_epochs: int, lr: float = 1e-3, seed: int = 0,
                 progress: bool = False, device=None) -> dict:
    """Run the three stages twice: post-training only, and with fine-tuning after each stage.

    Both tracks have the same structure, so the same bytes at every stage; the fine-tuned track feeds
    each stage the previous stage's fine-tuned model.

    Returns
    -------
    dict with ``rows`` (one per stage: ``stage``, ``bytes``, ``stage_factor``, ``factor`` (vs dense),
    ``acc_post``, ``acc_ft``, ``seconds_ft``) and ``models`` (``{"post": [...], "ft": [...]}``, one per stage).

    ``device``: where to fine-tune and score (``None``: where ``teacher`` is).

    Taught in: 06_pipeline
    """
    if device is not None:
        teacher = teacher.to(train.resolve_device(device))
    steps = {"prune": lambda m: stage_prune(m, keep=keep),
             "factorize": lambda m: stage_factorize(m, method=method, size_fraction=size_fraction),
             "quantize": lambda m: stage_quantize(m, n_bits=n_bits)}
    acc0 = accuracy(teacher, X_eval, y_eval)
    dense = model_bytes(teacher)
    rows = [{"stage": "dense", "bytes": dense, "stage_factor": 1.0, "factor": 1.0, "acc_post": acc0, "acc_ft": acc0,
             "seconds_ft": 0.0}]
    post, ft = [teacher], [teacher]
    for stage in STAGES[1:]:
        p = steps[stage](post[-1])
        f = steps[stage](ft[-1])
        t0 = time.perf_counter()
        finetune(f, X_train, y_train, epochs=finetune_epochs, lr=lr, seed=seed, progress=progress,
                 desc=f"fine-tune {stage}", device=device)
        nbytes = model_bytes(p)
        if nbytes != model_bytes(f):
            raise RuntimeError(f"stage {stage}: the two tracks store different bytes")
        rows.append({"stage": stage, "bytes": nbytes, "stage_factor": rows[-1]["bytes"] / nbytes,
                     "factor": dense / nbytes, "acc_post": accuracy(p, X_eval, y_eval),
                     "acc_ft": accuracy(f, X_eval, y_eval), "seconds_ft": round(time.perf_counter() - t0, 2)})
        post.append(p)
        ft.append(f)
    return {"rows": rows, "models": {"post": post, "ft": ft}}


# ---------------------------------------------------------------- distillation

def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, *,
                      T: float = 4.0, alpha: float = 0.7) -> torch.Tensor:
    """Knowledge-distillation loss (Hinton et al. 2015), averaged over the batch.

    ``α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α)·CE(s, y)``; the T² keeps the soft term's
    gradients on the scale of the hard one as T changes.

    Parameters
    ----------
    student_logits, teacher_logits : (B, C)    y : (B,) int labels
    T : temperature > 0    alpha : weight of the soft term in [0, 1]

    Taught in: 06_pipeline
    """
    if T <= 0 or not 0 <= alpha <= 1:
        raise ValueError(f"T={T}, alpha={alpha}: expected T > 0 and 0 ≤ alpha ≤ 1")
    log_p_s = F.log_softmax(student_logits / T, dim=1)
    p_t = F.softmax(teacher_logits.detach() / T, dim=1)
    soft = F.kl_div(log_p_s, p_t, reduction="batchmean") * T * T
    hard = F.cross_entropy(student_logits, y)
    return alpha * soft + (1 - alpha) * hard


def distill_step(teacher: nn.Module, *, T: float = 4.0, alpha: float = 0.7):
    """A ``step_fn`` for :func:`thinlab.train.fit` that trains the student on :func:`distillation_loss`
    against ``teacher`` (kept frozen, in eval mode). Taught in: 06_pipeline"""
    teacher.eval()

    def step(model, xb, yb, opt):
        if next(teacher.parameters()).device != xb.device:       # follow the student to its device
            teacher.to(xb.device)
        with torch.no_grad():
            t_logits = teacher(xb)
        opt.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = distillation_loss(logits, t_logits, yb, T=T, alpha=alpha)
        loss.backward()
        opt.step()
        return loss, logits, False

    return step


def distill(student: nn.Module, teacher: nn.Module, X_train, y_train, X_val=None, y_val=None, *, epochs: int,
            T: float = 4.0, alpha: float = 0.7, lr: float = 3e-3, seed: int = 0,
            progress: bool = False, device=None) -> train.History:
    """Train ``student`` in place from ``teacher`` with :func:`distillation_loss` (same recipe as
    :func:`thinlab.train.fit` otherwise). Taught in: 06_pipeline"""
    return train.fit(student, X_train, y_train, X_val, y_val, epochs=epochs, lr=lr, seed=seed, progress=progress,
                     step_fn=distill_step(teacher, T=T, alpha=alpha), desc="distill", device=device)


# ---------------------------------------------------------------- timing

@torch.no_grad()
def time_inference(model: nn.Module, X, *, repeats: int = 5, batch_size: int = 256) -> float:
    """Best-of-``repeats`` seconds for ``model`` to predict every row of ``X`` (eval mode, no grad).

    Taught in: 06_pipeline
    """
    from thinlab.experiments.timing import sample_times

    model.eval()
    dev = next(model.parameters()).device
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32).to(dev)     # on the model's device, copied once
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def run():
        for i in range(0, len(X), batch_size):
            model(X[i:i + batch_size])
        sync()                                   # a GPU runs asynchronously: wait for it before reading the clock

    with torch.no_grad():
        return min(sample_times({"all": run}, repeat=repeats, warmup=0)["all"])


# ---------------------------------------------------------------- Pareto front

def pareto_front(points, *, x: str = "bytes", y: str = "acc") -> list[dict]:
    """The points no other point beats: none is both no larger in ``x`` and more accurate in ``y``
    (and strictly better in one). Returned sorted by ``x``. Taught in: 06_pipeline"""
    pts = sorted(points, key=lambda p: (p[x], -p[y]))
    front, best = [], -float("inf")
    for p in pts:
        if p[y] > best:
            front.append(p)
            best = p[y]
    return front
