"""Safe, streaming extraction of a Speech Commands ``.tar.gz``.

One pass through the gzip (``tarfile`` stream mode ``r|`` over ``gzip.GzipFile``: tarfile's own
``r|gz`` never checks the gzip CRC, so corrupt clip bytes would pass unnoticed), writing only the
words asked for (plus ``_background_noise_/`` and the root list / licence files) into a temporary
folder that is renamed into place when complete. Links, devices, fifos, absolute paths and
``..`` members make the whole archive refused; nothing is written outside the temporary folder.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import gzip
import re
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from thinlab._io import temp_dir_beside
from thinlab._validate import check_bool, check_names, check_path

from ._io import ERRORS, ArchiveError, DataTypeError, UnsafeArchiveError, check_replaceable, swap_into_place
from .layout import BACKGROUND

ROOT_FILES = ("validation_list.txt", "testing_list.txt", "LICENSE", "README.md")


def _safe_name(m: tarfile.TarInfo, archive) -> str:
    name = m.name
    while name.startswith("./"):
        name = name[2:]
    p = PurePosixPath(name)
    why = None
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        why = "an absolute path"
    elif ".." in p.parts or "\\" in name:
        why = "a path that climbs out of the target folder ('..' or a backslash)"
    elif m.issym() or m.islnk():
        why = f"a {'symbolic' if m.issym() else 'hard'} link to {m.linkname!r}"
    elif m.ischr() or m.isblk() or m.isfifo():
        why = "a device or fifo"
    elif not (m.isfile() or m.isdir()):
        why = f"an unsupported member type {m.type!r}"
    if why:
        raise UnsafeArchiveError(f"{archive}: refusing member {m.name!r}, {why}; expected plain files under "
                                 "<word>/ folders. Nothing was extracted. Delete the archive; if it came from "
                                 "the official URL, do not use it.")
    return name.rstrip("/")


def extract_archive(archive, dest, *, words=None, always=(BACKGROUND,), progress: bool = True,
                    marker: dict | None = None) -> Path:
    """Stream-extract ``archive`` (``.tar.gz``) into ``dest``: only ``words`` (all when None), the
    ``always`` folders and the root list / licence files.

    Parameters
    ----------
    archive, dest : Path
    words : sequence of str, optional
    always : tuple of str
        Folders extracted whatever ``words`` says (``_background_noise_``; the test set's
        ``_unknown_`` and ``_silence_``).
    marker : dict, optional
        Extra facts for the completion marker.

    Returns
    -------
    Path
        ``dest``, complete (an older ``dest`` is replaced only at the very end).

    Raises
    ------
    UnsafeArchiveError
        Links, devices, fifos, absolute paths or ``..`` members.
    ArchiveError
        A corrupt or truncated archive, or one lacking the words asked for.

    Taught in: 00_speech_commands
    """
    from thinlab._progress import progress as tqdm  # text bars when headless

    archive, dest = check_path(archive, name="archive", errors=ERRORS), check_path(dest, name="dest", errors=ERRORS)
    if words is not None:
        words = check_names(words, name="words", example=["yes", "no"], errors=ERRORS)
    always = check_names(always, name="always", example=[BACKGROUND], errors=ERRORS, allow_empty=True)
    progress = check_bool(progress, name="progress", errors=ERRORS)
    if marker is not None and not isinstance(marker, dict):
        raise DataTypeError(f"marker={marker!r} must be a dict of facts to record (or None)")
    check_replaceable(dest)
    if not archive.is_file():
        raise ArchiveError(f"archive {archive} does not exist; expected a .tar.gz. Download it with "
                           "`python -m thinlab.data download test-v2` (or v1 / v2).")
    want = None if words is None else set(words)
    tmp = temp_dir_beside(dest)
    found, n, clips = set(), 0, 0
    try:
        try:
            # tarfile "r|" over gzip.GzipFile: GzipFile checks the CRC / length trailer, "r|gz" does not
            with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar, \
                    tqdm(desc=f"extract {archive.name}", unit="file", disable=not progress) as bar:
                for m in tar:
                    name = _safe_name(m, archive)
                    parts = name.split("/")
                    if m.isdir() or not name:
                        continue
                    top = parts[0]
                    if len(parts) == 1:
                        keep = top in ROOT_FILES
                    else:
                        keep = top in always or (not top.startswith((".", "_")) and (want is None or top in want))
                    if not keep:
                        continue
                    target = tmp.joinpath(*parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(m) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    found.add(top)
                    n += 1
                    clips += len(parts) == 2 and not top.startswith((".", "_")) and name.lower().endswith(".wav")
                    bar.update(1)
                while gz.read(1 << 20):  # read to the end so GzipFile verifies the CRC and length
                    pass
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ArchiveError(f"{archive} is corrupt or truncated ({type(exc).__name__}: {exc}); nothing was "
                               "extracted. Delete it and download again.") from exc
        missing = sorted((want or set()) - found)
        if missing or clips == 0:
            raise ArchiveError(f"{archive} holds no clips of {missing or 'any word'} (found {sorted(found) or 'nothing'}"
                               "; expected <word>/<speaker>_nohash_<n>.wav members); check the word names, or "
                               "delete the archive and download the right one.")
        return swap_into_place(tmp, dest, dict(marker or {}, words=None if want is None else sorted(want),
                                               files=n))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
