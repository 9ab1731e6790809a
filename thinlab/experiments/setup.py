"""The preamble every lesson shares, as one call: threads, determinism, device, data, baseline, scoring.

Every lesson starts the same way: set the threads and deterministic kernels, pick the device, find
the data (real speech when it can, synthetic under a banner when it cannot), load the
speaker-disjoint splits, load (or train once) lesson 00's baseline, and score models on the test
speakers with speaker-aware intervals. :func:`start` does all of it and returns a :class:`Lesson`
that carries the dataset, the device and the results dict the notebook writes at its end.

Taught in: 00_speech_commands … 07_deploy
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from thinlab import data, stats, train


@dataclass
class Lesson:
    """What a lesson's first cells set up (see :func:`start`).

    ``source`` and ``ds`` are the data (:func:`thinlab.data.resolve_source`,
    :func:`thinlab.data.load_dataset`), ``device`` is where models train, ``results`` is the dict the
    lesson writes to its JSON, ``seed`` and ``epochs`` the baseline's recipe.

    Taught in: 00_speech_commands … 07_deploy
    """

    source: object
    ds: object
    device: object
    seed: int
    epochs: int
    results: dict = field(default_factory=dict)

    def baseline(self, name: str = "dnn", **kwargs):
        """Lesson 00's trained ``name`` model for this data (from the cache, or trained now, once).

        Returns ``(model, info)`` as :func:`thinlab.train.baseline` does.
        """
        kwargs.setdefault("epochs", self.epochs)
        kwargs.setdefault("seed", self.seed)
        kwargs.setdefault("device", self.device)
        return train.baseline(name, self.ds, **kwargs)

    def test_acc(self, model) -> float:
        """Accuracy of ``model`` on the test speakers."""
        return float(train.evaluate(model, self.ds.X_test, self.ds.y_test)["accuracy"])

    def val_acc(self, model) -> float:
        """Accuracy of ``model`` on the validation speakers (for choices; the test split reports)."""
        return float(train.evaluate(model, self.ds.X_val, self.ds.y_val)["accuracy"])

    def test_hits(self, model) -> np.ndarray:
        """Per test clip: did ``model`` get it right (for the paired, speaker-aware comparisons)."""
        return stats.correct(model, self.ds.X_test, self.ds.y_test)

    def interval(self, model_or_hits) -> stats.Interval:
        """Test accuracy with its 95 % speaker-bootstrap interval (:func:`thinlab.stats.accuracy_interval`)."""
        hits = model_or_hits if isinstance(model_or_hits, np.ndarray) else self.test_hits(model_or_hits)
        return stats.accuracy_interval(hits, self.ds.speakers_test)

    def compare(self, hits_a, hits_b, **kwargs) -> stats.Comparison:
        """Paired speaker-aware comparison of two models' per-clip hits on the test split."""
        return stats.paired_compare(hits_a, hits_b, self.ds.speakers_test, **kwargs)

    def score(self, model, name: str, **extra) -> dict:
        """Test accuracy, interval and stored bytes of ``model``, printed and kept as ``results[name]``."""
        from thinlab.nn import size_report

        hits = self.test_hits(model)
        iv = self.interval(hits)
        row = {"test_acc": float(hits.mean()), "interval": [iv.low, iv.high], "se": iv.se,
               "bytes": int(size_report(model).total_bytes), **extra}
        self.results[name] = row
        print(f"{name}: test accuracy {iv.text()}, {row['bytes']:,} bytes")
        return row


def start(*, data_source="auto", task: str = "10words", max_per_class=None, seed: int = 0, epochs: int = 20,
          device="auto", deterministic: bool = True, download: bool = True, threads=None, split: str = "speaker",
          synth_kwargs: dict | None = None, verbose: bool = True, **results) -> Lesson:
    """Set up a lesson: threads, determinism, device, data and the results dict, in one call.

    Parameters are the lesson's own parameters cell (``DATA``, ``TASK``, ``MAX_PER_CLASS``, ``SEED``,
    ``EPOCHS``, ``DEVICE``, ``DETERMINISTIC``, ``DOWNLOAD``, ``THREADS``); extra keyword arguments
    start the results dict (e.g. ``fast=FAST``). The results get ``data`` (kind and split sizes) and
    ``eval`` (the test clips, so every lesson's numbers are on the same set).

    Taught in: 00_speech_commands … 07_deploy
    """
    threads = train.use_threads(threads)
    train.set_deterministic(deterministic)
    dev = train.resolve_device(device)
    source = data.resolve_source(data_source, synth_kwargs={"seed": seed, **(synth_kwargs or {})}, download=download)
    ds = data.load_dataset(source, task=task, split=split, max_per_class=max_per_class, seed=seed)
    res = {"seed": seed, "task": task, **results,
           "data": {"kind": source.kind, "n_train": len(ds.y_train), "n_val": len(ds.y_val), "n_test": len(ds.y_test)},
           "eval": stats.eval_record(ds.files_test, ds.speakers_test)}
    if verbose:
        print(train.describe_device(dev), f"· {threads} thread(s)")
        print(f"data: {source.kind}, {len(ds.labels)} classes; {len(ds.y_train):,} train / {len(ds.y_val):,} "
              f"validation / {len(ds.y_test):,} test clips (speaker-disjoint)")
    return Lesson(source=source, ds=ds, device=dev, seed=seed, epochs=epochs, results=res)
