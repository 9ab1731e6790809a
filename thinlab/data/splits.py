"""Splitting clips into training / validation / testing, by speaker unless asked otherwise.

Rules, in the order ``mode="speaker"`` tries them (the first that gives every class clips in
all three splits wins, and the result says which one was used and why the others were not):

1. the official ``validation_list.txt`` / ``testing_list.txt``, when they name no clip that is
   missing from a word folder present here;
2. the data set's own rule, TensorFlow's ``which_set``: SHA-1 of the file name with
   ``_nohash_.*`` removed (the speaker), ``int(hex) % 2**27`` scaled by ``100 / (2**27 - 1)``
   to a percentage, compared with the validation / testing percentages. It reproduces the
   official lists exactly, so it degenerates exactly when they do (a folder that is a subset
   of one official split, such as ``../shared/speech_commands_sample``);
3. the speaker-rank rule: speakers sorted by the SHA-1 of their id, the first
   ``validation_percentage`` % (at least one) to validation, the next ``testing_percentage`` %
   to testing. Still speaker-disjoint, works on any folder with ≥ 3 speakers.

``mode="random"`` splits files at random within each class (NOT speaker-disjoint: the same
voice lands in training and testing), so lesson 00 can measure the speaker leak.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import hashlib
import os
import re
from collections import Counter

from thinlab._validate import check_int, check_real

from ._io import ERRORS, DataError, DataTypeError

MAX_NUM_WAVS_PER_CLASS = 2 ** 27 - 1  # the constant of TensorFlow's input_data.py
SPLITS = ("training", "validation", "testing")
MODES = ("speaker", "official", "hash", "rank", "random")


def check_percentages(validation_percentage, testing_percentage) -> tuple:
    """Both percentages as floats > 0 with a sum below 100, or a clear error.

    Taught in: 00_speech_commands
    """
    hint = "pass a percentage of the speakers, e.g. 10.0 (the data set uses 10/10)"
    vp = check_real(validation_percentage, name="validation_percentage", low=0.0, high=100.0, low_open=True,
                    high_open=True, hint=hint, errors=ERRORS)
    tp = check_real(testing_percentage, name="testing_percentage", low=0.0, high=100.0, low_open=True,
                    high_open=True, hint=hint, errors=ERRORS)
    if vp + tp >= 100:
        raise DataError(f"validation/testing percentages {vp}/{tp} must be > 0 with a sum below 100 "
                        "(the data set uses 10/10); lower them so training keeps some speakers.")
    return vp, tp


def hash_percentage(name: str) -> float:
    """The percentage in [0, 100] that ``which_set`` gives the group name ``name``.

    Taught in: 00_speech_commands
    """
    digest = int(hashlib.sha1(name.encode("utf-8")).hexdigest(), 16)
    return (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """The data set's own split of a clip: ``"training"``, ``"validation"`` or ``"testing"``.

    Same rule as TensorFlow's ``speech_commands/input_data.py``: only the base name up to
    ``_nohash_`` (the speaker) is hashed, so every clip of a speaker lands in the same split.

    Parameters
    ----------
    filename : str
        A clip path such as ``"yes/3b4f8f24_nohash_1.wav"``.
    validation_percentage, testing_percentage : float
        Percent of speakers (by hash) for validation and testing.

    Taught in: 00_speech_commands
    """
    if not isinstance(filename, (str, os.PathLike)):
        raise DataTypeError(f"filename={filename!r} ({type(filename).__name__}) is not a path; pass a clip path such "
                            "as 'yes/3b4f8f24_nohash_1.wav'")
    validation_percentage, testing_percentage = check_percentages(validation_percentage, testing_percentage)
    p = hash_percentage(re.sub(r"_nohash_.*$", "", os.path.basename(filename)))
    if p < validation_percentage:
        return "validation"
    if p < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def _rank(key: str, seed=None) -> str:
    return hashlib.sha1((key if seed is None else f"{seed}:{key}").encode()).hexdigest()


def _missing_classes(assign, labels) -> list:
    """Classes (with their split counts) lacking clips in some split; empty when usable."""
    have = Counter(zip(labels, assign))
    bad = []
    for lab in sorted(set(labels)):
        counts = [have[(lab, s)] for s in SPLITS]
        if 0 in counts:
            bad.append((lab, counts))
    return bad


def _describe_bad(bad, names) -> str:
    lab, counts = bad[0]
    more = f", and {len(bad) - 1} more classes" if len(bad) > 1 else ""
    return f"'{names(lab)}' gets {counts[0]}/{counts[1]}/{counts[2]} clips in training/validation/testing{more}"


def _official(folder, clips):
    val, test = folder.lists["validation"], folder.lists["testing"]
    return ["validation" if c.rel in val else "testing" if c.rel in test else "training" for c in clips]


def _missing_listed(folder, clips) -> list:
    present = {c.rel for c in folder.clips}
    top = {c.folder for c in folder.clips}
    named = folder.lists["validation"] | folder.lists["testing"]
    return sorted(r for r in named if r.split("/", 1)[0] in top and r not in present)


def _rank_rule(clips, val_pct, test_pct):
    speakers = sorted({c.speaker for c in clips if c.speaker}, key=_rank)
    n = len(speakers)
    if n < 3:
        raise DataError(f"only {n} speaker(s) found; a speaker-disjoint training/validation/testing split needs "
                        "at least 3. Use more data, or split='random' (file-level, not speaker-disjoint).")
    n_val = max(1, round(n * val_pct / 100))
    n_test = max(1, round(n * test_pct / 100))
    if n_val + n_test >= n:
        n_val, n_test = 1, 1
    where = {s: ("validation" if i < n_val else "testing" if i < n_val + n_test else "training")
             for i, s in enumerate(speakers)}
    return [where[c.speaker] if c.speaker else which_set(c.rel, val_pct, test_pct) for c in clips]


def _random_rule(clips, labels, val_pct, test_pct, seed):
    assign = [""] * len(clips)
    for lab in set(labels):
        idx = sorted((i for i, l in enumerate(labels) if l == lab), key=lambda i: _rank(clips[i].rel, seed))
        n = len(idx)
        n_val, n_test = round(n * val_pct / 100), round(n * test_pct / 100)
        if n >= 3:
            n_val, n_test = max(1, n_val), max(1, n_test)
        for k, i in enumerate(idx):
            assign[i] = "validation" if k < n_val else "testing" if k < n_val + n_test else "training"
    return assign


def split_clips(folder, clips, labels, *, mode: str = "speaker", validation_percentage: float = 10.0,
                testing_percentage: float = 10.0, seed: int = 0, names=str):
    """Assign each clip to ``"training"``, ``"validation"`` or ``"testing"``.

    Parameters
    ----------
    folder : Folder
        From :func:`thinlab.data.layout.scan` (for its official lists).
    clips : list of Clip, length N
    labels : sequence of int, length N
        Class of each clip (every class should reach all three splits).
    mode : {"speaker", "official", "hash", "rank", "random"}
        ``"speaker"`` tries official lists → hash rule → rank rule (see the module docstring);
        ``"official"`` / ``"hash"`` / ``"rank"`` force one rule and raise if it is unusable;
        ``"random"`` is a file-level split that ignores speakers.
    names : callable
        Label id → class name, for messages.

    Returns
    -------
    assign : list of str, length N
    rule : str
        One line saying which rule was used (and why earlier ones were not).
    speaker_disjoint : bool

    Taught in: 00_speech_commands
    """
    if not isinstance(mode, str) or mode not in MODES:
        raise (DataError if isinstance(mode, str) else DataTypeError)(
            f"split={mode!r} is not a split mode; use one of {MODES} ('speaker' is the default).")
    vp, tp = check_percentages(validation_percentage, testing_percentage)
    seed = check_int(seed, name="seed", low=0, hint="pass a whole number ≥ 0, e.g. seed=0", errors=ERRORS)
    labels, clips = list(labels), list(clips)
    if len(labels) != len(clips):
        raise DataError(f"split_clips got {len(clips)} clips but {len(labels)} labels; pass one label per clip "
                        "(plan_task does)")
    if mode == "random":
        return (_random_rule(clips, labels, vp, tp, seed),
                f"random file-level split ({vp:g}% / {tp:g}% per class, seed {seed}): NOT speaker-disjoint",
                False)
    why, official = [], None
    if mode in ("speaker", "official"):
        if folder.lists is not None and (vp, tp) != (10.0, 10.0):
            if mode == "official":
                raise DataError(f"split='official' uses the lists' fixed 10%/10%; got {vp:g}/{tp:g}. Drop the "
                                "percentages, or use split='speaker' (the hash rule honours them).")
            why.append(f"official lists ignored: they fix 10%/10%, {vp:g}%/{tp:g}% was asked")
        elif folder.lists is None:
            if mode == "official":
                raise DataError(f"split='official' needs validation_list.txt / testing_list.txt in {folder.root}; "
                                "none found. Use split='speaker' (the data set's hash rule).")
            why.append("no official lists in the folder")
        else:
            src = f"official lists ({folder.lists_where})"
            missing = _missing_listed(folder, clips)
            assign = official = _official(folder, clips)
            bad = _missing_classes(assign, labels)
            if bad:
                why.append(f"{src} leave a split empty ({_describe_bad(bad, names)})")
            elif missing:
                why.append(f"{src} name {len(missing)} clips missing from this folder (e.g. {missing[0]})")
            else:
                return assign, f"{src}: speaker-disjoint", True
            if mode == "official":
                raise DataError(f"split='official' cannot be used on {folder.root}: {why[-1]}. Re-download or "
                                "re-extract the data set so the lists match, or use split='speaker'.")
    hash_rule = f"speaker-hash rule (TensorFlow which_set, {vp:g}% validation / {tp:g}% testing)"
    if mode in ("speaker", "hash"):
        assign = [which_set(c.rel if c.folder != "_unknown_" else f"{c.speaker}_nohash_", vp, tp) for c in clips]
        bad = _missing_classes(assign, labels)
        if not bad:
            return assign, hash_rule + ("; " + "; ".join(why) if why else ""), True
        if why and official is not None and assign == official:
            why.append("the speaker-hash rule gives the same split (it is the rule that made those lists)")
        else:
            why.append(f"the {hash_rule} leaves a split empty ({_describe_bad(bad, names)})")
        if mode == "hash":
            raise DataError(f"split='hash' cannot be used on {folder.root}: {why[-1]}. Use split='speaker'.")
    assign = _rank_rule(clips, vp, tp)
    rule = (f"speaker-rank rule (speakers sorted by the SHA-1 of their id: first {vp:g}% to validation, next "
            f"{tp:g}% to testing), speaker-disjoint")
    return assign, rule + ("; used because " + "; ".join(why) if why else ""), True
