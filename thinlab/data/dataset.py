"""``load_dataset``: the one call lessons and models use to get features, labels and speakers.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from thinlab._validate import check_bool, check_int, check_real

from ._io import ERRORS, DataError, DataTypeError
from .audio import SAMPLE_RATE, check_snr_range, fix_length, load_audio, parse_window, random_augment, read_audio
from .features import FeatureParams, cached, compute_features
from .layout import WORDS10, scan
from .parallel import featurize_to_store
from .source import DataSource, resolve_source
from .splits import MODES, SPLITS, check_percentages
from .store import STORAGES, use_memmap
from .tasks import TASKS, check_words, plan_task

AUGMENT_DEFAULTS = {"snr_db": (5.0, 20.0), "max_shift_ms": 100.0, "p_noise": 0.8, "copies": 1}
_SHORT = {"training": "train", "validation": "val", "testing": "test"}
_CHUNK = 256  # clips per feature batch: bounds memory at ~16 MB of audio


@dataclass(repr=False)
class Dataset:
    """Features and labels per split. ``X_*``: float32 (N, frames, n_features) (for a large set a
    memory-mapped :class:`~thinlab.data.store.FeatureArray` that indexes like one); ``y_*``: int64 (N,);
    ``speakers_*`` / ``files_*``: str arrays (N,) (speaker ``""`` for silence)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    labels: list
    source: DataSource
    speakers_train: np.ndarray
    speakers_val: np.ndarray
    speakers_test: np.ndarray
    files_train: np.ndarray
    files_val: np.ndarray
    files_test: np.ndarray
    task: str = "10words"
    split_rule: str = ""
    speaker_disjoint: bool = True
    feature: FeatureParams = field(default_factory=FeatureParams)
    notes: list = field(default_factory=list)
    cache_status: str = ""

    def shared_speakers(self) -> dict:
        """Speakers found in two splits: ``{"train&val": n, "train&test": n, "val&test": n}``.

        Taught in: 00_speech_commands
        """
        s = {k: set(getattr(self, f"speakers_{k}")) - {""} for k in ("train", "val", "test")}
        return {f"{a}&{b}": len(s[a] & s[b]) for a, b in (("train", "val"), ("train", "test"), ("val", "test"))}

    def describe(self) -> str:
        """A short human summary: task, features, source, split rule, counts per split.

        Taught in: 00_speech_commands
        """
        shape = self.X_train.shape[1:] if self.X_train.ndim == 3 else ()
        lines = [f"Speech Commands '{self.task}': {len(self.labels)} classes, {self.feature.kind} features "
                 f"{' × '.join(map(str, shape))} (frames × features)",
                 f"source: {self.source.kind} — {self.source.description} at {self.source.path}",
                 f"split: {self.split_rule}"]
        for k in ("train", "val", "test"):
            y, spk = getattr(self, f"y_{k}"), getattr(self, f"speakers_{k}")
            per = np.bincount(y, minlength=len(self.labels)) if len(y) else np.zeros(len(self.labels), int)
            lines.append(f"  {k:<5} {len(y):>7,} clips {len(set(spk) - {''}):>5,} speakers   per class "
                         f"{per.min()}–{per.max()}")
        shared = self.shared_speakers()
        lines.append("  speakers in two splits: " + (", ".join(f"{k} {v}" for k, v in shared.items())
                                                     if any(shared.values()) else "none"))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Dataset(task={self.task!r}, train={len(self.y_train)}, val={len(self.y_val)}, "
                f"test={len(self.y_test)}, source={self.source.kind!r})")


class _ClipReader:
    """Loads plan rows (real files or ``…#start=…&gain=…`` background windows), optionally augmented."""

    def __init__(self, folder, seed, augment):
        self.root, self.seed, self.augment = folder.root, seed, augment
        self._noise = {}
        self.noises = [self._load_noise(r) for r in folder.background] if augment else []

    def _load_noise(self, rel):
        if rel not in self._noise:
            self._noise[rel] = read_audio(self.root / rel)
        return self._noise[rel]

    def __call__(self, rel, copy):
        window = parse_window(rel)
        if window is not None:  # a silence window: the recording is read once and kept
            base, start, gain = window
            clip = fix_length(self._load_noise(base)[start:start + SAMPLE_RATE] * np.float32(gain), SAMPLE_RATE)
        else:
            clip = load_audio(self.root / rel)
        if copy == 0:
            return clip
        h = int(hashlib.sha1(f"{self.seed}:{copy}:{rel}".encode()).hexdigest()[:16], 16)
        return random_augment(clip, self.noises, rng=np.random.default_rng(h), snr_db=self.augment["snr_db"],
                              max_shift_ms=self.augment["max_shift_ms"], p_noise=self.augment["p_noise"])


def check_augment(augment) -> dict | None:
    """``augment`` (False, True or a dict of :data:`AUGMENT_DEFAULTS` overrides) as the full option
    dict, or ``None`` for no augmentation; every option checked.

    Taught in: 00_speech_commands
    """
    if augment is None or augment is False or (isinstance(augment, np.bool_) and not augment):
        return None
    if augment is True or isinstance(augment, np.bool_):
        return dict(AUGMENT_DEFAULTS)
    if not isinstance(augment, dict):
        raise DataTypeError(f"augment={augment!r} ({type(augment).__name__}) must be True, False or a dict of "
                            f"options such as {{'copies': 2}}; the options are {sorted(AUGMENT_DEFAULTS)}")
    unknown = sorted(set(augment) - set(AUGMENT_DEFAULTS), key=str)
    if unknown:
        raise DataError(f"augment has unknown options {unknown}; use {sorted(AUGMENT_DEFAULTS)}.")
    aug = dict(AUGMENT_DEFAULTS, **augment)
    aug["snr_db"] = check_snr_range(aug["snr_db"])
    aug["max_shift_ms"] = check_real(aug["max_shift_ms"], name="augment max_shift_ms", low=0.0, high=1000.0,
                                     hint="pass the largest shift in ms, e.g. 100.0", errors=ERRORS)
    aug["p_noise"] = check_real(aug["p_noise"], name="augment p_noise", low=0.0, high=1.0,
                                hint="pass the probability of adding noise, e.g. 0.8", errors=ERRORS)
    if isinstance(aug["copies"], (int, np.integer)) and not isinstance(aug["copies"], bool) and aug["copies"] < 1:
        raise DataError(f"augment copies={aug['copies']} must be ≥ 1 (or augment=False for none).")
    aug["copies"] = check_int(aug["copies"], name="augment copies", low=1, high=100, errors=ERRORS,
                              hint="pass how many augmented copies of each training clip to add, e.g. 1")
    return aug


def _stat(root, rel):
    st = os.stat(root / rel.split("#", 1)[0])
    return [rel, st.st_size, st.st_mtime_ns]


def load_dataset(source="auto", *, task: str = "10words", feature="logmel", split: str = "speaker",
                 max_per_class: int | None = None, seed: int = 0, augment=False, progress: bool = True,
                 words=WORDS10, validation_percentage: float = 10.0, testing_percentage: float = 10.0,
                 feature_params: dict | None = None, cache: bool = True, verbose: bool = True,
                 storage: str = "auto") -> Dataset:
    """Features, labels and speakers of a Speech Commands task, split (by speaker by default).

    Parameters
    ----------
    source : str, Path or DataSource
        See :func:`thinlab.data.resolve_source` (``"auto"``, ``"synthetic"``, ``"test-v2"``, a folder …).
    task : {"10words", "12class"}
    feature : {"logmel", "mfcc"} or FeatureParams
    split : {"speaker", "official", "hash", "rank", "random"}
        ``"speaker"`` (default): official lists → hash rule → rank rule, no speaker in two splits;
        ``"random"``: file-level random split (speakers leak between splits).
    max_per_class : int, optional
        At most this many clips per class in each split (deterministic from ``seed``).
    seed : int
    augment : bool or dict
        True (or a dict overriding ``AUGMENT_DEFAULTS``): append ``copies`` augmented copies of every
        training clip (random ±``max_shift_ms`` shift, background noise at ``snr_db`` with probability
        ``p_noise``); validation and testing stay clean.
    progress : bool
        tqdm bars while computing features.
    words : sequence of str
        The keywords (default yes no up down left right on off stop go).
    feature_params : dict, optional
        Overrides of :class:`FeatureParams` (``n_mels``, ``n_mfcc``, ``n_fft``, ``hop_length`` …).
    cache : bool
        Use the on-disk feature cache.
    verbose : bool
        Print the source's ``message`` (which data this is; for synthetic data, how to get the real set).
    storage : {"auto", "memory", "memmap"}
        ``"memory"``: float32 features in RAM (one cache file). ``"memmap"``: float16 chunks on disk,
        computed in parallel, resumable, read through memory maps (:mod:`thinlab.data.store`), so the
        full data sets fit a 2 GB machine. ``"auto"`` (default): ``"memmap"`` when the float32
        features would exceed 256 MiB (about 16,000 clips), else ``"memory"``. With ``cache=False``
        the features are always computed into RAM.

    Returns
    -------
    Dataset
        ``X_train`` float32 (N, 101, 40) with the defaults, ``y_train`` int64 (N,), same for ``_val`` /
        ``_test``; ``labels``, ``source``, ``speakers_*``, ``files_*`` and ``describe()``.

    Taught in: 00_speech_commands
    """
    from thinlab._progress import progress as tqdm  # text bars when headless

    if isinstance(feature, FeatureParams):
        if feature_params:
            raise DataError("feature is a FeatureParams and feature_params is given too; put the options in one "
                            "place: FeatureParams(..., n_mels=64) or feature='logmel', feature_params={'n_mels': 64}")
        params = feature
    else:
        params = FeatureParams.from_options(feature, feature_params)
    if not isinstance(source, (str, os.PathLike, DataSource)) or isinstance(source, bytes):
        raise DataTypeError(f"source={source!r} ({type(source).__name__}) is not a data source; pass 'auto', "
                            "'synthetic', 'test-v2', 'v1', 'v2' or a folder path")
    if not isinstance(task, str) or task not in TASKS:
        raise (DataError if isinstance(task, str) else DataTypeError)(
            f"task={task!r} is unknown; use '10words' or '12class'.")
    words = check_words(words)
    if not isinstance(split, str) or split not in MODES:
        raise (DataError if isinstance(split, str) else DataTypeError)(
            f"split={split!r} is not a split mode; use one of {MODES} ('speaker' is the default).")
    check_percentages(validation_percentage, testing_percentage)
    if max_per_class is not None:
        check_int(max_per_class, name="max_per_class", low=1, errors=ERRORS,
                  hint="pass how many clips per class to keep in each split, or None for all")
    seed = check_int(seed, name="seed", low=0, hint="pass a whole number ≥ 0, e.g. seed=0", errors=ERRORS)
    cache, progress, verbose = (check_bool(v, name=k, errors=ERRORS)
                                for k, v in (("cache", cache), ("progress", progress), ("verbose", verbose)))
    aug = check_augment(augment)
    if not isinstance(storage, str) or storage not in STORAGES:
        raise (DataError if isinstance(storage, str) else DataTypeError)(
            f"storage={storage!r} is unknown; use 'auto' (memory-map large sets), 'memory' or 'memmap'.")
    src = resolve_source(source, progress=progress, verbose=verbose)
    folder = scan(src.path)
    plan = plan_task(folder, task=task, split=split, seed=seed, max_per_class=max_per_class, words=words,
                     validation_percentage=validation_percentage, testing_percentage=testing_percentage)
    if aug:
        if not folder.background:
            plan.notes.append("augment: no _background_noise_/ folder, so only time shifts were applied")
    copies = int(aug["copies"]) if aug else 0
    items = []  # (split, rel, label, speaker, copy)
    for s in SPLITS:
        for c in range(1 + (copies if s == "training" else 0)):
            items += [(s, rel, lab, spk, c) for rel, lab, spk in plan.rows[s]]
    key = {"version": 1, "feature": asdict(params), "root": str(src.path.resolve()),
           "rows": [_stat(folder.root, rel) + [c] for _, rel, _, _, c in items],
           "augment": None if aug is None else dict(aug, seed=seed,
                                                    background=[_stat(folder.root, b) for b in folder.background])}

    def compute():
        reader = _ClipReader(folder, seed, aug)
        X = np.empty((len(items), params.n_frames(SAMPLE_RATE), params.n_features), np.float32)
        with tqdm(total=len(items), desc=f"{params.kind} features", unit="clip", disable=not progress) as bar:
            for i in range(0, len(items), _CHUNK):
                batch = np.stack([reader(rel, c) for _, rel, _, _, c in items[i:i + _CHUNK]])  # (b, 16000)
                X[i:i + len(batch)] = compute_features(batch, params)
                bar.update(len(batch))
        return X

    if cache and use_memmap(storage, len(items), (params.n_frames(SAMPLE_RATE), params.n_features)):
        X, status = featurize_to_store(key, [(rel, c) for _, rel, _, _, c in items], folder=folder, seed=seed,
                                       aug=aug, params=params, progress=progress)
    else:
        X, status = cached(key, compute, n_rows=len(items), use_cache=cache)
    arrays, start = {}, 0
    for s in SPLITS:  # items are grouped by split, so each split is a contiguous slice (a view, no copy)
        rows = [it for it in items if it[0] == s]
        k, stop = _SHORT[s], start + len(rows)
        X_k = X[start:stop] if isinstance(X, np.ndarray) else X.subset(start, stop)  # a view either way
        arrays.update({f"X_{k}": X_k, f"y_{k}": np.array([r[2] for r in rows], dtype=np.int64),
                       f"speakers_{k}": np.array([r[3] for r in rows], dtype=str),
                       f"files_{k}": np.array([r[1] for r in rows], dtype=str)})
        start = stop
    notes = list(plan.notes)
    if copies:
        notes.append(f"augment: training holds {len(plan.rows['training']):,} clips + {copies} augmented "
                     f"cop{'y' if copies == 1 else 'ies'} of each ({aug})")
    ds = Dataset(**arrays, labels=list(plan.labels), source=src, task=task, split_rule=plan.rule,
                 speaker_disjoint=plan.speaker_disjoint, feature=params, notes=notes, cache_status=status)
    if verbose:
        print(src.message)
    return ds
