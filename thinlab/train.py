"""Seeded training and evaluation with progress bars, a learning-rate schedule, accuracy and
confusion matrix, and a baseline cache so any lesson can get a trained model without retraining.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from thinlab._progress import progress as tqdm  # text bars when headless

from thinlab._io import atomic_file, cache_root
from thinlab._threads import set_threads
from thinlab.models import build_model


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every device) so a run repeats. Taught in: 00_speech_commands"""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)      # also seeds CUDA and MPS generators


def set_deterministic(on: bool = True) -> bool:
    """Make torch pick deterministic kernels (``torch.use_deterministic_algorithms``, cuDNN without
    autotuning), so two runs with the same seed give bit-identical weights; returns ``on``.

    Without it, some kernels sum in an order that depends on thread timing: on the CPU the backward
    pass of HashedNets' shared weights (``values[idx]``, an indexed accumulate) differs between two
    2-thread runs. Ops with no deterministic version only warn. The cost in speed is measured by
    ``make bench`` (``determinism_*`` ratios); lessons switch it on with ``DETERMINISTIC = True``.

    Taught in: 00_speech_commands
    """
    if not isinstance(on, bool):
        raise TypeError(f"on={on!r}: expected True or False")
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")      # cuBLAS needs this to be repeatable
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on
    return on


# ---------------------------------------------------------------- devices

class DeviceError(ValueError):
    """A device that is unknown or not present on this machine."""


def available_devices() -> list[str]:
    """Devices torch can use here, best first: ``"cuda:0"`` …, ``"mps"``, ``"cpu"``.

    Taught in: 00_speech_commands
    """
    found = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def resolve_device(device="auto") -> torch.device:
    """The ``torch.device`` to train and evaluate on.

    ``"auto"`` takes the first of CUDA, Apple MPS, CPU that is present; ``"cpu"``, ``"cuda"``,
    ``"cuda:1"``, ``"mps"`` or a ``torch.device`` must be present, else :class:`DeviceError` lists
    the devices there are. Lessons call it on their ``DEVICE`` parameter and print the result.

    The small course models gain a lot from a GPU (the lesson CNN's training step at batch 256:
    4.1 ms on an H200 against 66.8 ms on 16 CPU cores) but the numpy kernels always run on the CPU;
    the torch side moves tensors between the two.

    Taught in: 00_speech_commands
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device(available_devices()[0])
    if not isinstance(device, (str, torch.device)):
        raise DeviceError(f"device={device!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device; "
                          f"devices here: {available_devices()}")
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(f"device={device!r} is not a device name ({exc}); use 'auto' or one of "
                          f"{available_devices()}") from None
    here = available_devices()
    if dev.type == "cuda":
        ok = torch.cuda.is_available() and (dev.index is None or dev.index < torch.cuda.device_count())
        if ok and dev.index is None:
            dev = torch.device("cuda:0")
    elif dev.type == "mps":
        ok = "mps" in here
    else:
        ok = dev.type == "cpu"
    if not ok:
        raise DeviceError(f"device={str(device)!r} is not available on this machine; devices here: {here}. "
                          "Use DEVICE='auto' to take the best one present.")
    return dev


def describe_device(device) -> str:
    """One line naming a device for a notebook to print (GPU model and memory where there is one).

    Taught in: 00_speech_commands
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        return f"device: {dev} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    if dev.type == "mps":
        return "device: mps (Apple GPU)"
    return f"device: cpu ({torch.get_num_threads()} torch threads; no GPU found)" if dev.type == "cpu" else str(dev)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); CPU for a model with neither."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _place(model: nn.Module, device) -> torch.device:
    """Move ``model`` to ``device`` (``None``: leave it where it is); return the device used."""
    if device is None:
        return model_device(model)
    dev = resolve_device(device)
    model.to(dev)
    return dev


@dataclass
class History:
    """What :func:`fit` measured, one entry per epoch."""

    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    seconds: float = 0.0
    skipped_steps: int = 0

    def rows(self) -> list[dict]:
        """One dict per epoch (for a chart)."""
        return [{"epoch": i + 1, "train_loss": l, "train_acc": a, "val_acc": v, "lr": r}
                for i, (l, a, v, r) in enumerate(zip(self.train_loss, self.train_acc, self.val_acc, self.lr))]


def available_cpus() -> int:
    """CPUs this process may really use: its affinity mask, capped by a cgroup v2 CPU quota.

    ``os.cpu_count()`` reports the host's cores; in a container (Binder, a CI runner) the quota
    is often far lower, and torch's default of one thread per host core then oversubscribes it.

    Taught in: 00_speech_commands
    """
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(float(quota) / float(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def use_threads(threads: int | None = None) -> int:
    """Set torch's and numpy's BLAS thread counts; ``None`` uses :func:`available_cpus`.

    On an idle 2-core machine two threads train the lesson models 1.3x (DNN) to 2.2x (CNN) faster
    than one; on a machine busy with other work, fewer threads than cores can be faster, since
    a thread that waits for a busy core holds the others up: lower ``THREADS`` in a lesson then.

    Returns the number of threads set.

    Taught in: 00_speech_commands
    """
    if threads is None:
        threads = available_cpus()
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads={threads!r} must be a positive int, or None for the CPUs available "
                         f"({available_cpus()})")
    set_threads(threads)
    return threads


#: training sets up to this size are copied to a GPU once; larger ones go batch by batch
_ON_DEVICE_BYTES = 1 << 30


#: rows read at a time when streaming over memory-mapped features (statistics, copying to a GPU)
_STREAM_ROWS = 1024


def _is_mapped(X) -> bool:
    """True for features left on disk: an ``np.memmap`` or a :class:`thinlab.data.store.FeatureArray`."""
    return isinstance(X, np.memmap) or getattr(X, "memory_mapped", False) is True


def _as_tensors(X, y):
    """Features and labels for :func:`fit`: in-memory features become one float32 tensor; memory-mapped
    ones stay on disk (read batch by batch in :func:`fit`, never all at once)."""
    if not _is_mapped(X):
        X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if len(X.shape) != 3:
        raise ValueError(f"expected features of shape (N, frames, n_mels), got {tuple(X.shape)}")
    if len(X) != len(y):
        raise ValueError(f"features and labels disagree: {len(X)} examples vs {len(y)} labels")
    if len(X) == 0:
        raise ValueError("no examples to train on: the split is empty; use more data or a smaller "
                         "validation/test share")
    return X, y


def _gather(X, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` (sorted, so the memory map is read front to back) of memory-mapped ``X`` as float32."""
    rows = X[idx.numpy()] if isinstance(X, np.memmap) else X.gather(idx.numpy())
    return torch.from_numpy(np.asarray(rows, dtype=np.float32))


def _to_device(X, dev: torch.device) -> torch.Tensor:
    """Memory-mapped ``X`` copied to ``dev`` a block at a time (never whole in CPU memory)."""
    out = torch.empty(tuple(X.shape), dtype=torch.float32, device=dev)
    for s in range(0, len(X), _STREAM_ROWS):
        out[s:s + _STREAM_ROWS] = torch.from_numpy(np.asarray(X[s:s + _STREAM_ROWS], dtype=np.float32))
    return out


def feature_stats(X, *, chunk_rows: int = _STREAM_ROWS) -> tuple:
    """Per-band mean and standard deviation of features (N, frames, n_mels) over examples and frames,
    in one streaming pass: blocks of ``chunk_rows`` examples in float64, merged with Chan et al.'s
    pairwise update, so a memory-mapped set is never read into memory whole.

    Returns
    -------
    mean, std : np.ndarray, float64, shape (n_mels,)   (std with ddof=0, like ``np.std``)

    Taught in: 00_speech_commands
    """
    if not _is_mapped(X) and not isinstance(X, np.ndarray):
        X = np.asarray(X, dtype=np.float32)
    if len(X.shape) != 3 or len(X) == 0:
        raise ValueError(f"expected features of shape (N, frames, n_mels) with N ≥ 1, got {tuple(X.shape)}")
    n, mean, m2 = 0, np.zeros(X.shape[-1]), np.zeros(X.shape[-1])
    for s in range(0, len(X), chunk_rows):
        block = np.asarray(X[s:s + chunk_rows], dtype=np.float64).reshape(-1, X.shape[-1])  # (rows·frames, n_mels)
        k, bmean = len(block), block.mean(axis=0)
        bm2 = ((block - bmean) ** 2).sum(axis=0)
        delta, total = bmean - mean, n + k
        mean = mean + delta * (k / total)
        m2 = m2 + bm2 + delta ** 2 * (n * k / total)
        n = total
    return mean, np.sqrt(m2 / n)


def set_input_stats(model: nn.Module, X_train) -> None:
    """Set the model's :class:`~thinlab.models.Standardize` buffers from training features
    (:func:`feature_stats`: one streaming pass, so memory-mapped features stay on disk).

    Taught in: 00_speech_commands
    """
    if hasattr(model, "norm"):
        model.norm.set_stats(*feature_stats(X_train))


def fit(model: nn.Module, X_train, y_train, X_val=None, y_val=None, *, epochs: int = 20,
        batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 1e-4, seed: int = 0,
        schedule: str = "onecycle", progress: bool = True, step_fn: Callable | None = None,
        set_stats: bool = True, desc: str = "train", eps: float = 1e-8, device=None) -> History:
    """Train ``model`` with AdamW and a learning-rate schedule, seeded; returns a :class:`History`.

    Parameters
    ----------
    X_train : array (N, frames, n_mels)    y_train : int array (N,)
        A memory-mapped ``X_train`` (``np.memmap``, or the :class:`thinlab.data.store.FeatureArray` that
        ``load_dataset`` gives for a large set) is never read whole: each shuffled mini-batch is
        gathered from it (its indices sorted, so the file is read in order) and converted to float32.
    schedule : ``"onecycle"`` (warm-up then cosine decay), ``"cosine"`` or ``"constant"``.
    step_fn : optional ``step_fn(model, xb, yb, optimizer) -> (loss, logits, skipped)`` replacing the
        plain float32 step (used for FP16 training and for masked / fake-quantised fine-tuning).
    set_stats : set the model's input standardisation from ``X_train`` first.
    eps : AdamW's epsilon (pure float16 training needs ≥ 1e-4: 1e-8 rounds to 0 in half precision).
    device : where to train (see :func:`resolve_device`); the model is moved there. ``None``: where the
        model already is. The features stay in CPU memory unless they fit comfortably on the device.

    Taught in: 00_speech_commands
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs={epochs}, batch_size={batch_size}, lr={lr}: expected epochs ≥ 1, "
                         "batch_size ≥ 1 and lr > 0")
    X, y = _as_tensors(X_train, y_train)
    seed_everything(seed)
    if set_stats:
        set_input_stats(model, X_train)
    dev = _place(model, device)
    mapped = _is_mapped(X)                     # memory-mapped: mini-batches are gathered from disk
    if dev.type != "cpu" and 4 * int(np.prod(X.shape)) <= _ON_DEVICE_BYTES:
        X, y = (_to_device(X, dev) if mapped else X.to(dev)), y.to(dev)  # small enough: all of it on the device
        mapped = False
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=weight_decay, eps=eps)
    steps_per_epoch = (len(X) + batch_size - 1) // batch_size
    total = epochs * steps_per_epoch
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.15)
    elif schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    elif schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    else:
        raise ValueError(f"schedule={schedule!r}; choose 'onecycle', 'cosine' or 'constant'")
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    hist, t0 = History(), time.perf_counter()
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X), generator=gen)
        tot_loss = tot_correct = seen = 0
        for i in range(0, len(X), batch_size):
            idx = perm[i:i + batch_size]
            if mapped:                         # sorted: the batch's rows are read in file order
                idx = idx.sort().values
                xb = _gather(X, idx).to(dev, non_blocking=True)
            else:
                xb = X[idx.to(X.device)].to(dev, non_blocking=True)
            yb = y[idx.to(y.device)].to(dev, non_blocking=True)
            if step_fn is None:
                opt.zero_grad(set_to_none=True)
                logits = model(xb)
                loss = loss_fn(logits, yb)
                loss.backward()
                opt.step()
                skipped = False
            else:
                loss, logits, skipped = step_fn(model, xb, yb, opt)
            hist.skipped_steps += int(bool(skipped))
            if skipped:     # a loss-scaled step that overflowed: the schedule moves on, and torch's warning
                with warnings.catch_warnings():          # that the optimiser has not stepped yet is expected
                    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
                    sched.step()
            else:
                sched.step()
            tot_loss += float(loss.detach() if torch.is_tensor(loss) else loss) * len(idx)
            tot_correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
            bar.update(1)
        hist.train_loss.append(tot_loss / seen)
        hist.train_acc.append(tot_correct / seen)
        hist.lr.append(opt.param_groups[0]["lr"])
        if X_val is not None and len(X_val):
            hist.val_acc.append(evaluate(model, X_val, y_val, device=dev)["accuracy"])
            bar.set_postfix(loss=f"{hist.train_loss[-1]:.3f}", val_acc=f"{hist.val_acc[-1]:.3f}")
        else:
            hist.val_acc.append(float("nan"))
    bar.close()
    hist.seconds = time.perf_counter() - t0
    return hist


def finetune(model: nn.Module, X_train, y_train, X_val=None, y_val=None, *, epochs: int, lr: float = 1e-3,
             seed: int = 0, batch_size: int = 64, progress: bool = True, step_fn=None,
             desc: str = "fine-tune", device=None) -> "History":
    """Fine-tune a (pruned) model in place: AdamW with cosine decay from ``lr``, input statistics kept.

    Masks stay fixed: a masked weight is ``original * mask`` in every forward pass. ``device``: where
    to train (see :func:`thinlab.train.resolve_device`; ``None``: where the model is).

    Taught in: 01_pruning … 06_pipeline
    """
    return fit(model, X_train, y_train, X_val, y_val, epochs=epochs, lr=lr, seed=seed,
                     batch_size=batch_size, schedule="cosine", set_stats=False, progress=progress,
                     step_fn=step_fn, desc=desc, device=device)


@torch.no_grad()
def predict(model: nn.Module, X, *, batch_size: int = 256, device=None) -> np.ndarray:
    """Class predictions (N,) of ``model`` in eval mode, on ``device`` (``None``: where the model is).

    Taught in: 00_speech_commands
    """
    model.eval()
    dev = _place(model, device)
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    dtype = next(model.parameters()).dtype
    out = [model(X[i:i + batch_size].to(dev, dtype)).argmax(1).cpu() for i in range(0, len(X), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = true class, columns = predicted (vectorised bincount)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    flat = y_true * n_classes + y_pred  # (N,) cell index of each example
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)  # (C, C)


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error √(p(1−p)/n) of an accuracy measured on ``n`` examples.

    Taught in: 00_speech_commands
    """
    if n < 1:
        raise ValueError(f"n={n}: a standard error needs at least one test example")
    return float(np.sqrt(accuracy * (1 - accuracy) / n))


def difference_noise(*standard_errors: float) -> float:
    """Two standard errors of a difference of independent estimates: ``2·√(Σ se²)``.

    A difference of two accuracies smaller than this is not evidence of anything; with two
    equal standard errors it is ``2·√2·se``.

    Taught in: 00_speech_commands
    """
    if not standard_errors or any(not se >= 0 for se in standard_errors):
        raise ValueError(f"standard_errors={standard_errors!r}: give one or more standard errors, each ≥ 0")
    return 2 * float(np.sqrt(np.sum(np.square(standard_errors))))


def evaluate(model: nn.Module, X, y, *, n_classes: int | None = None, device=None) -> dict:
    """Accuracy and confusion matrix of ``model`` on (X, y), on ``device`` (``None``: where the model is).

    Taught in: 00_speech_commands
    """
    y = np.asarray(y)
    pred = predict(model, X, device=device)
    n_classes = n_classes or int(max(y.max(initial=0), pred.max(initial=0)) + 1)
    acc = float((pred == y).mean()) if len(y) else float("nan")
    return {"accuracy": acc, "confusion": confusion_matrix(y, pred, n_classes), "n": int(len(y))}


# ---------------------------------------------------------------- baseline cache

def data_fingerprint(*arrays) -> str:
    """A short hash of the arrays' bytes and shapes: the part of a cache key that names the data."""
    h = hashlib.sha256()
    for a in arrays:
        if _is_mapped(a):                   # memory-mapped features: hashed a block at a time, never read whole
            h.update(str((tuple(a.shape), np.dtype(np.float32).str)).encode())
            for s in range(0, len(a), _STREAM_ROWS):
                h.update(np.ascontiguousarray(a[s:s + _STREAM_ROWS], dtype=np.float32).tobytes())
            continue
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _atomic_torch_save(obj, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_file(path, "wb") as f:
        f.write(buf.getvalue())


def baseline(name: str, ds, *, epochs: int = 20, seed: int = 0, batch_size: int = 64, lr: float = 3e-3,
             model_kwargs: dict | None = None, progress: bool = True, cache: bool = True,
             verbose: bool = True, device=None):
    """A trained baseline for dataset ``ds`` (from :func:`thinlab.data.load_dataset`), from the cache
    when the same model, hyper-parameters and data were trained before, else trained now and cached.

    Returns ``(model, info)`` where ``info`` has ``test_acc``, ``val_acc``, ``history``, ``cached``.
    A corrupt or mismatched cache file is reported and retrained, never trusted; it is read with
    ``weights_only=True``, so a crafted file cannot run code. The model is returned on ``device``
    (``None``: the CPU); a cached model trained on one device loads on any other. ``seed`` is the
    only source of randomness: it is set before the model is built, so its initial weights repeat.

    Taught in: 00_speech_commands
    """
    dev = resolve_device("cpu" if device is None else device)
    model_kwargs = dict(model_kwargs or {})
    n_classes = len(ds.labels)
    _, n_frames, n_mels = np.shape(ds.X_train)          # .shape only: a memory map is not read
    model_kwargs.setdefault("n_frames", n_frames)
    model_kwargs.setdefault("n_mels", n_mels)
    seed_everything(seed)
    model = build_model(name, n_classes, **model_kwargs)
    # the model's code is part of the key: a changed architecture must not load stale weights
    code = hashlib.sha256(inspect.getsource(type(model)).encode()).hexdigest()[:12]
    key_obj = {"model": name, "code": code, "n_classes": n_classes, "kwargs": model_kwargs, "epochs": epochs,
               "seed": seed,
               "batch_size": batch_size, "lr": lr, "torch": torch.__version__.split("+")[0],
               "data": data_fingerprint(ds.X_train, ds.y_train, ds.X_val, ds.y_val)}
    key = hashlib.sha256(json.dumps(key_obj, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_root() / "baselines" / f"{name}-{key}.pt"
    if cache and path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(blob, dict) or blob.get("key") != key_obj:
                raise ValueError("stored key differs from the requested one")
            model.load_state_dict(blob["state_dict"])
            model.to(dev)
            info = dict(blob["info"], cached=True)
            if verbose:
                print(f"baseline {name}: loaded from cache ({path.name}); test accuracy "
                      f"{info['test_acc']:.3f}")
            return model, info
        except Exception as exc:  # corrupt / foreign file: say so, retrain, overwrite atomically
            print(f"baseline cache {path} unusable ({exc}); retraining")
    hist = fit(model, ds.X_train, ds.y_train, ds.X_val, ds.y_val, epochs=epochs, seed=seed,
               batch_size=batch_size, lr=lr, progress=progress, desc=f"train {name}", device=dev)
    info = {"val_acc": evaluate(model, ds.X_val, ds.y_val, n_classes=n_classes)["accuracy"] if len(ds.y_val)
            else float("nan"),
            "test_acc": evaluate(model, ds.X_test, ds.y_test, n_classes=n_classes)["accuracy"],
            "history": hist.rows(), "seconds": hist.seconds, "cached": False, "device": str(dev)}
    if cache:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        _atomic_torch_save({"key": key_obj, "state_dict": state, "info": info}, path)
    if verbose:
        print(f"baseline {name}: trained {epochs} epochs in {hist.seconds:.0f}s; test accuracy "
              f"{info['test_acc']:.3f}")
    return model, info
