"""The two tasks of the course, as lists of (clip, class, speaker) per split.

* ``"10words"``: yes no up down left right on off stop go.
* ``"12class"``: the ten words + ``_unknown_`` (other words, from other word folders or the
  test archive's ``_unknown_/``) + ``_silence_`` (the ``_silence_/`` folder, else 1-s windows
  cut from ``_background_noise_/`` recordings). ``_unknown_`` and ``_silence_`` are each
  subsampled to the mean keyword-class size of their split.

Silence windows are named ``_background_noise_/<file>.wav#start=<sample>&gain=<g>``; each
recording is cut by time (first part training, then validation, then testing) so no stretch of
noise is in two splits.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from thinlab._validate import check_int, check_names

from ._io import ERRORS, DataError, DataTypeError, read_marker
from .layout import BACKGROUND, SILENCE, UNKNOWN, WORDS10, Clip, Folder
from .splits import SPLITS, check_percentages, split_clips, which_set

TASKS = ("10words", "12class")


@dataclass
class Plan:
    """Which clips go where: ``rows[split]`` is a list of ``(rel, class_id, speaker)``."""

    labels: list
    rows: dict = field(default_factory=dict)
    rule: str = ""
    speaker_disjoint: bool = True
    notes: list = field(default_factory=list)


def check_words(words) -> list:
    """``words`` as a list of distinct plain word-folder names (a string such as ``"yes,no"`` is refused).

    Taught in: 00_speech_commands
    """
    words = check_names(words, name="words", example=["yes", "no"], errors=ERRORS)
    bad = [w for w in words if not w or w.startswith((".", "_")) or "/" in w or "\\" in w or w != w.strip()]
    if bad:
        raise DataError(f"words={words!r}: {bad} are not word-folder names; pass plain words such as 'yes' "
                        f"(the classes {UNKNOWN!r} and {SILENCE!r} come with task='12class').")
    return words


def _how_to_get(root, missing, words) -> str:
    """The repair advice for missing keyword folders, naming the archive this folder came from."""
    from .downloader import ARCHIVES

    marker = read_marker(root, verify=False) or {}
    which = marker.get("which") if marker.get("kind") == "download" else None
    if marker.get("kind") == "synthetic":
        return (f"this synthetic set was made without them: synthesize one with "
                f"thinlab.data.synthesize(words={sorted(set(words) | set(marker.get('params', {}).get('words', [])))})")
    if which in ARCHIVES:
        spec = ARCHIVES[which]
        if spec.words is None or set(missing) <= set(spec.words):
            return f"extract them (python -m thinlab.data download {which} --words {','.join(missing)})"
        return (f"the {which} archive has no {sorted(set(missing) - set(spec.words))}: download the full set "
                f"(python -m thinlab.data download v2 --words {','.join(words)}, 2.4 GB)")
    return f"download them (python -m thinlab.data download v2 --words {','.join(words)})"


def _by_rank(items, seed, key=lambda x: x):
    return sorted(items, key=lambda x: hashlib.sha1(f"{seed}:{key(x)}".encode()).hexdigest())


def _silence_windows(folder, counts, seed, vp, tp):
    """``counts[split]`` silence windows cut from the background recordings by time region."""
    import soundfile as sf

    lengths = {}
    for rel in folder.background:
        info = sf.info(str(folder.root / rel))
        lengths[rel] = int(info.frames * 16000 // info.samplerate)  # in 16 kHz samples
    edges = {"training": (0.0, 1 - (vp + tp) / 100), "validation": (1 - (vp + tp) / 100, 1 - tp / 100),
             "testing": (1 - tp / 100, 1.0)}
    out = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, k])
        usable = [(rel, int(a * n), int(b * n)) for rel, n in lengths.items()
                  for a, b in [edges[split]] if int(b * n) - int(a * n) >= 16000]
        if counts[split] and not usable:
            raise DataError(f"_silence_ clips for {split} are cut from {BACKGROUND}/ but no recording there has "
                            f"1 s in its {split} part; add longer noise recordings (≥ 10 s) or a {SILENCE}/ folder.")
        rows = []
        for i in range(counts[split]):
            rel, lo, hi = usable[i % len(usable)]
            start = int(rng.integers(lo, hi - 16000 + 1))
            rows.append(f"{rel}#start={start}&gain={rng.uniform(0.0, 1.0):.4f}")
        out[split] = rows
    return out


def plan_task(folder, *, task: str = "10words", split: str = "speaker", seed: int = 0,
              max_per_class: int | None = None, words=WORDS10, validation_percentage: float = 10.0,
              testing_percentage: float = 10.0) -> Plan:
    """Choose the clips of ``task`` in ``folder`` and split them.

    Parameters
    ----------
    folder : Folder
        From :func:`thinlab.data.layout.scan`.
    task : {"10words", "12class"}
    split : str
        See :func:`thinlab.data.splits.split_clips` (``"speaker"`` by default, or ``"random"``).
    seed : int
        For subsampling, silence windows and the random split.
    max_per_class : int, optional
        Keep at most this many clips per class in each split (deterministic choice).
    words : sequence of str
        The keywords (default the standard ten).

    Returns
    -------
    Plan

    Taught in: 00_speech_commands
    """
    if not isinstance(task, str) or task not in TASKS:
        raise (DataError if isinstance(task, str) else DataTypeError)(
            f"task={task!r} is unknown; use '10words' or '12class'.")
    if not isinstance(folder, Folder):
        raise DataTypeError(f"folder={folder!r} is not a scanned Folder; pass thinlab.data.scan(path)")
    words = check_words(words)
    validation_percentage, testing_percentage = check_percentages(validation_percentage, testing_percentage)
    seed = check_int(seed, name="seed", low=0, hint="pass a whole number ≥ 0, e.g. seed=0", errors=ERRORS)
    if max_per_class is not None:
        max_per_class = check_int(max_per_class, name="max_per_class", low=1, errors=ERRORS,
                                  hint="pass how many clips per class to keep in each split, or None for all")
    labels = words + ([UNKNOWN, SILENCE] if task == "12class" else [])
    have = set(folder.words)
    missing = [w for w in words if w not in have]
    if len(missing) == len(words):
        raise DataError(f"{folder.root} has none of the keywords {words}; its word folders are "
                        f"{folder.words or 'none'}. Point to a Speech Commands folder, or run `make data`.")
    if missing:
        raise DataError(f"{folder.root} lacks the keyword folders {missing} (found {sorted(have)}); "
                        f"{_how_to_get(folder.root, missing, words)} or pass words={[w for w in words if w in have]}.")
    cid = {w: i for i, w in enumerate(labels)}
    pool = [c for c in folder.clips if c.folder in words]
    if task == "12class":
        unknown = [c for c in folder.clips
                   if c.folder == UNKNOWN or (c.folder not in words and not c.folder.startswith("_"))]
        if not unknown:
            raise DataError(f"task='12class' needs clips of other words for '{UNKNOWN}' but {folder.root} has only "
                            f"{folder.words}; download more words (drop --words) or use task='10words'.")
        pool += unknown
    pool_labels = [cid[c.folder] if c.folder in words else cid[UNKNOWN] for c in pool]
    assign, rule, disjoint = split_clips(folder, pool, pool_labels, mode=split, seed=seed,
                                         validation_percentage=validation_percentage,
                                         testing_percentage=testing_percentage, names=lambda i: labels[i])
    plan = Plan(labels=labels, rule=rule, speaker_disjoint=disjoint)
    per = {s: {} for s in SPLITS}
    for c, lab, s in zip(pool, pool_labels, assign):
        per[s].setdefault(lab, []).append(c)
    mean = {s: max(1, round(np.mean([len(per[s].get(cid[w], [])) for w in words]))) for s in SPLITS}
    if task == "12class":
        sil = [c for c in folder.clips if c.folder == SILENCE]
        if sil:
            for c in sil:
                s = which_set(c.rel, validation_percentage, testing_percentage)
                per[s].setdefault(cid[SILENCE], []).append(c)
        elif folder.background:
            cuts = _silence_windows(folder, mean, seed, validation_percentage, testing_percentage)
            for s in SPLITS:
                per[s][cid[SILENCE]] = [Clip(r, SILENCE, "", BACKGROUND) for r in cuts[s]]
            plan.notes.append(f"{SILENCE}: 1-s windows cut from {len(folder.background)} {BACKGROUND} recordings")
        else:
            raise DataError(f"task='12class' needs a {SILENCE}/ or {BACKGROUND}/ folder in {folder.root} for "
                            "the silence class; none found. Add noise recordings or use task='10words'.")
        for s in SPLITS:  # unknown and silence: about one keyword class's worth per split
            for lab in (cid[UNKNOWN], cid[SILENCE]):
                per[s][lab] = _by_rank(per[s].get(lab, []), seed, key=lambda c: c.rel)[:mean[s]]
    for s in SPLITS:
        rows = []
        for lab, clips in per[s].items():
            if max_per_class is not None:
                clips = _by_rank(clips, seed, key=lambda c: c.rel)[:max_per_class]
            rows += [(c.rel, lab, c.speaker) for c in clips]
        plan.rows[s] = sorted(rows, key=lambda r: (r[1], r[0]))
    return plan
