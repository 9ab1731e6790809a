"""Reading a folder in the Speech Commands layout.

Two layouts, possibly mixed, are understood:

* the full data sets (v0.01 / v0.02): ``<word>/<speaker>_nohash_<n>.wav``, long noise
  recordings in ``_background_noise_/``, and ``validation_list.txt`` / ``testing_list.txt``
  at the root;
* the official 12-class test archive: word folders as above plus
  ``_unknown_/<word>_<speaker>_nohash_<n>.wav`` and ``_silence_/<n>.wav``.

List files are looked for at the root, else in ``lists/<version>/`` (the layout of
``../shared/speech_commands_sample``). The speaker of a clip is its file name with
``_nohash_…`` removed (exactly the part TensorFlow's ``which_set`` hashes), minus the
``<word>_`` prefix in ``_unknown_/``.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from thinlab._validate import check_path

from ._io import ERRORS, DataError

BACKGROUND, UNKNOWN, SILENCE = "_background_noise_", "_unknown_", "_silence_"
#: the ten keywords of the standard task, in class-id order
WORDS10 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
WORDS_V1 = tuple(sorted(WORDS10 + ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                   "nine", "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila",
                                   "tree", "wow")))
WORDS_V2 = tuple(sorted(WORDS_V1 + ("backward", "forward", "follow", "learn", "visual")))
LIST_FILES = {"validation": "validation_list.txt", "testing": "testing_list.txt"}
_NOHASH = re.compile(r"_nohash_.*$")


@dataclass(frozen=True)
class Clip:
    """One clip: ``rel`` (posix path under the root), its ``word`` (for ``_unknown_/`` clips the
    spoken word from the file name; ``"_silence_"`` for silence), ``speaker`` (``""`` when none)
    and ``folder`` (the top-level folder it sits in)."""

    rel: str
    word: str
    speaker: str
    folder: str


@dataclass
class Folder:
    """What :func:`scan` found under ``root``."""

    root: Path
    clips: list = field(default_factory=list)
    background: list = field(default_factory=list)  # rel paths of the noise recordings
    lists: dict | None = None  # {"validation": set(rel), "testing": set(rel)}
    lists_where: str = ""  # e.g. "validation_list.txt / testing_list.txt at the root"

    @property
    def words(self) -> list:
        """Sorted word folders present (not ``_unknown_`` / ``_silence_``).

        Taught in: 00_speech_commands
        """
        return sorted({c.folder for c in self.clips if not c.folder.startswith("_")})


def speaker_of(file_name: str, *, folder: str = "") -> str:
    """The speaker id in a clip's file name: ``"3b4f8f24_nohash_1.wav"`` → ``"3b4f8f24"``.

    In ``_unknown_/`` the ``<word>_`` prefix is dropped (``"bed_0c540988_nohash_0.wav"`` →
    ``"0c540988"``); in ``_silence_/`` there is no speaker (``""``). A name without
    ``_nohash_`` is its own speaker (as in TensorFlow's ``which_set``).

    Taught in: 00_speech_commands
    """
    if folder == SILENCE:
        return ""
    name = _NOHASH.sub("", os.path.basename(file_name))
    if folder == UNKNOWN and "_" in name:
        name = name.split("_", 1)[1]
    return name


def _is_wav(name: str) -> bool:
    return name.lower().endswith(".wav") and not name.startswith(".")


def _read_list(path: Path) -> set:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read the list file {path} ({exc.strerror or exc}); check its permissions, or delete "
                        "it to split by the speaker-hash rule instead.") from exc
    names = (ln.strip() for ln in lines)
    return {n[2:] if n.startswith("./") else n for n in names if n}


def _find_lists(root: Path, present: set) -> tuple:
    """Lists at the root, else the ``lists/<version>/`` pair naming the most present clips."""
    lists = root / "lists"
    candidates = [root] + ([Path(e.path) for e in _entries(lists) if _is_dir(e)] if _is_dir(lists) else [])
    best, best_hits, where = None, -1, ""
    for d in candidates:
        if not any((d / f).is_file() for f in LIST_FILES.values()):
            continue
        lists = {k: (_read_list(d / f) if (d / f).is_file() else set()) for k, f in LIST_FILES.items()}
        if d == root:
            return lists, "validation_list.txt / testing_list.txt at the root"
        hits = len(present & (lists["validation"] | lists["testing"]))
        if hits > best_hits:
            best, best_hits, where = lists, hits, f"{d.relative_to(root).as_posix()}/"
    return best, where


def scan(root) -> Folder:
    """Index a Speech Commands folder (full set, 12-class test archive, or a mix).

    Parameters
    ----------
    root : str or Path
        The folder holding ``<word>/`` folders.

    Returns
    -------
    Folder
        ``clips`` (sorted by path), ``background`` recordings, and the official ``lists``
        (or ``None``) with where they were found.

    Raises
    ------
    DataError
        When ``root`` is missing, not a folder, or holds no ``.wav`` clips in word folders.

    Taught in: 00_speech_commands
    """
    root = check_path(root, name="root", errors=ERRORS).expanduser()
    if not root.exists():
        raise DataError(f"data folder {root} does not exist; expected a Speech Commands folder "
                        "(<word>/<speaker>_nohash_<n>.wav). Run `make data`, or use source='synthetic'.")
    if not root.is_dir():
        raise DataError(f"data source {root} is a file, expected a folder of <word>/ folders; "
                        "if it is an archive, use thinlab.data.extract_archive or `make data`.")
    found = Folder(root=root)
    for entry in _entries(root):
        if entry.name.startswith(".") or not _is_dir(entry):
            continue
        names = sorted(n for n in _listdir(entry) if _is_wav(n))
        if entry.name == BACKGROUND:
            found.background = [f"{BACKGROUND}/{n}" for n in names]
            continue
        for n in names:
            word = entry.name
            if entry.name == UNKNOWN:
                word = _NOHASH.sub("", n).split("_", 1)[0]
            found.clips.append(Clip(f"{entry.name}/{n}", word, speaker_of(n, folder=entry.name), entry.name))
    if not found.clips:
        subdirs = sorted(e.name for e in _entries(root) if _is_dir(e))
        raise DataError(f"data folder {root} holds no .wav clips in word folders (found folders: "
                        f"{subdirs or 'none'}); expected <word>/<speaker>_nohash_<n>.wav. Point to the "
                        "folder that contains yes/, no/, ... or run `make data`.")
    found.lists, found.lists_where = _find_lists(root, {c.rel for c in found.clips})
    return found


def _unreadable(path, exc: OSError) -> DataError:
    why = exc.strerror or str(exc)
    if getattr(exc, "errno", None) == 40 or "symbolic links" in why:  # ELOOP
        fix = "a symbolic link that points back at itself: remove it or point it at a real folder"
    elif isinstance(exc, PermissionError):
        fix = f"no permission: chmod a+rx '{path}' or move it out of the data folder"
    else:
        fix = "remove it from the data folder or fix it"
    return DataError(f"cannot read {path} ({why}); {fix}.")


def _entries(folder) -> list:
    """The entries of ``folder`` sorted by name; an unreadable folder is a :class:`DataError`."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise _unreadable(folder, exc) from exc


def _is_dir(entry) -> bool:
    """``entry.is_dir()`` (following links), where a looping or unreadable link is a :class:`DataError`."""
    try:
        return entry.is_dir() if isinstance(entry, os.DirEntry) else Path(entry).is_dir()
    except OSError as exc:
        raise _unreadable(getattr(entry, "path", entry), exc) from exc


def _listdir(entry) -> list:
    try:
        return os.listdir(entry.path)
    except OSError as exc:
        raise _unreadable(entry.path, exc) from exc
