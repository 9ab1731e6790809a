"""A feature cache for sets too large for RAM: float16 chunks on disk, read through memory maps.

The full Speech Commands v0.02 holds 105,829 clips; as float32 log-mel features
(101 frames × 40 bands) that is 1.7 GB, more than a 2 GB Binder machine can hold beside torch.
So large sets are stored like this::

    <cache>/features/<sha256 of the key>.f16/
        key.json                 everything the features depend on (compared exactly)
        chunk-000000.npy         float16 (rows, frames, n_features), CHUNK_ROWS clips
        chunk-000000.json        its rows, shape and sha256, written after the .npy
        …

Every file is written atomically (:func:`thinlab._io.atomic_file`), and a chunk counts only
when its ``.json`` exists and the ``.npy`` beside it has the recorded shape and sha256, so a run
that is killed keeps every chunk it finished and never takes a partial one as valid: the next
run computes only the chunks that are missing. A chunk with a bad checksum or a wrong shape is
reported (:class:`~thinlab.data.features.FeatureCacheWarning`) and computed again.

Why float16 is honest here: it keeps 11 significant bits, a relative error below 4.9e-4. A
log-mel value lies in about [-14, 10], so the error is at most 0.004, far below the
band-to-band and clip-to-clip spread the models learn from (a band's standard deviation is
about 2-4). The test ``test_float16_features_keep_the_predictions`` checks it on real clips.

:class:`FeatureArray` reads the chunks back as one read-only float32 array: ``shape``, ``len``,
integer, slice, boolean and fancy indexing (each returning an ordinary float32 array of just
those rows) and ``np.asarray`` (the whole array, for the small splits) all work as on an
ndarray, so lessons use it unchanged, while :func:`thinlab.train.fit` gathers one mini-batch at
a time from it.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from thinlab._io import atomic_file, cache_root, sweep_orphans, write_json_atomic

from .features import FeatureCacheWarning

#: how features are stored on disk
STORE_DTYPE = np.dtype(np.float16)
#: clips per chunk file (8 MB of float16 log-mel): what an interrupted run loses at most
CHUNK_ROWS = 1024
#: ``storage="auto"`` memory-maps a set whose float32 features would take more than this many bytes
MEMMAP_BYTES = 256 * 2**20
STORAGES = ("auto", "memory", "memmap")
_VERSION = 1
_VERIFIED: dict = {}  # (path, inode, size, mtime) → True once its checksum was checked in this process


class FeatureCacheFullError(OSError):
    """The disk holding the feature cache is full; the message names the folder and ``THINLAB_CACHE``."""


def disk_full_error(folder, detail: str) -> FeatureCacheFullError:
    """The error to raise when the cache's disk is (or would be) full, with what to do about it.

    Taught in: 00_speech_commands
    """
    env = os.environ.get("THINLAB_CACHE")
    where = f"THINLAB_CACHE={env}" if env else "THINLAB_CACHE is not set, so the cache is ~/.cache/thinlab"
    return FeatureCacheFullError(
        errno.ENOSPC, f"no space left for the feature cache in {folder} ({detail}). Free space on that disk, or set "
                      f"THINLAB_CACHE to a folder on a disk with room ({where}). The chunks already written are kept: "
                      "the next run resumes from them.")


def _is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class ChunkStore:
    """The chunk files of one feature array, keyed by ``key_text`` (see the module notes).

    Parameters
    ----------
    key_text : str
        JSON of everything the features depend on; names the folder and is stored in it.
    n_rows : int
        Clips in the whole array.
    row_shape : tuple (frames, n_features)
    chunk_rows : int
        Clips per chunk file.
    root : Path, optional
        The parent folder; default ``<cache>/features``.

    Taught in: 00_speech_commands
    """

    def __init__(self, key_text: str, n_rows: int, row_shape, *, chunk_rows: int = CHUNK_ROWS, root=None):
        self.key_text = key_text
        self.n_rows, self.row_shape, self.chunk_rows = int(n_rows), tuple(int(d) for d in row_shape), int(chunk_rows)
        digest = hashlib.sha256(key_text.encode("utf-8")).hexdigest()[:24]
        self.folder = Path(root if root is not None else cache_root() / "features") / f"{digest}.f16"

    @property
    def n_chunks(self) -> int:
        """How many chunk files make up the array. Taught in: 00_speech_commands"""
        return -(-self.n_rows // self.chunk_rows)

    def bounds(self, i: int) -> tuple:
        """``(start, stop)`` rows of chunk ``i``. Taught in: 00_speech_commands"""
        return i * self.chunk_rows, min(self.n_rows, (i + 1) * self.chunk_rows)

    def chunk_bytes(self, i: int) -> int:
        """Bytes of chunk ``i`` on disk (data, without the .npy header). Taught in: 00_speech_commands"""
        start, stop = self.bounds(i)
        return (stop - start) * int(np.prod(self.row_shape)) * STORE_DTYPE.itemsize

    def _paths(self, i: int) -> tuple:
        return self.folder / f"chunk-{i:06d}.npy", self.folder / f"chunk-{i:06d}.json"

    def prepare(self) -> None:
        """Create the folder with its ``key.json``; a folder whose stored key differs is emptied (with a warning).

        Taught in: 00_speech_commands
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            sweep_orphans(self.folder)  # temporary files of a killed run
            key_path = self.folder / "key.json"
            stored = None
            if key_path.exists():
                try:
                    stored = key_path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    stored = ""
            if stored is not None and stored != self.key_text:
                warnings.warn(f"feature cache {self.folder} was made for other parameters or files (its key.json "
                              "differs from the requested one); recomputing every chunk.", FeatureCacheWarning,
                              stacklevel=3)
            if stored != self.key_text:
                for p in self.folder.glob("chunk-*"):
                    p.unlink()
                with atomic_file(key_path, "w") as f:
                    f.write(self.key_text)
        except OSError as exc:
            if _is_disk_full(exc):
                raise disk_full_error(self.folder, "writing key.json") from exc
            raise

    def check(self, i: int) -> bool:
        """True if chunk ``i`` is complete and intact; a damaged one is reported, removed and False.

        A missing chunk (never written, or killed before its ``.json``) is simply False.

        Taught in: 00_speech_commands
        """
        npy, meta = self._paths(i)
        if not meta.exists():
            return False
        start, stop = self.bounds(i)
        want = (stop - start, *self.row_shape)
        problem = None
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            st = npy.stat()
            token = (str(npy), st.st_ino, st.st_size, st.st_mtime_ns, info.get("sha256"))
            if tuple(info.get("shape", ())) != want or info.get("start") != start:
                problem = f"it records shape {info.get('shape')} at row {info.get('start')}, expected {list(want)} " \
                          f"at row {start}"
            elif token not in _VERIFIED:
                head = np.load(npy, mmap_mode="r", allow_pickle=False)  # reads the header only
                shape, dtype = tuple(head.shape), head.dtype
                del head
                if shape != want or dtype != STORE_DTYPE:
                    problem = f"it holds {dtype} of shape {shape}, expected {STORE_DTYPE} of shape {want}"
                elif _sha256_file(npy) != info.get("sha256"):
                    problem = "its sha256 differs from the one recorded when it was written"
                else:
                    _VERIFIED[token] = True
        except FileNotFoundError:
            problem = "its .npy file is missing"
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            problem = f"it cannot be read ({type(exc).__name__}: {exc})"
        if problem is None:
            return True
        warnings.warn(f"feature cache chunk {npy} is damaged: {problem}; computing it again.", FeatureCacheWarning,
                      stacklevel=3)
        for p in (meta, npy):
            p.unlink(missing_ok=True)
        return False

    def missing(self) -> list:
        """Indices of the chunks still to compute (damaged ones reported and removed).

        Taught in: 00_speech_commands
        """
        return [i for i in range(self.n_chunks) if not self.check(i)]

    def check_space(self, chunks) -> None:
        """Raise :class:`FeatureCacheFullError` now if ``chunks`` would not fit on the cache's disk.

        Taught in: 00_speech_commands
        """
        need = sum(self.chunk_bytes(i) + 4096 for i in chunks)
        free = shutil.disk_usage(self.folder).free
        if need > free:
            raise disk_full_error(self.folder, f"{len(chunks)} chunks need {need / 2**20:,.0f} MB, the disk has "
                                               f"{free / 2**20:,.0f} MB free")

    def write(self, i: int, X) -> None:
        """Store chunk ``i`` (float32 features of its rows) as float16, atomically, then its ``.json``.

        Taught in: 00_speech_commands
        """
        start, stop = self.bounds(i)
        want = (stop - start, *self.row_shape)
        if tuple(X.shape) != want:
            raise ValueError(f"chunk {i} has shape {tuple(X.shape)}, expected {want}")
        X16 = np.asarray(X).astype(STORE_DTYPE)
        if not np.isfinite(X16).all():
            big = float(np.abs(np.asarray(X, dtype=np.float64)).max())
            raise ValueError(f"features up to {big:.3g} do not fit float16 (largest {np.finfo(STORE_DTYPE).max:g}); "
                             "load this set with storage='memory' (float32 in RAM)")
        buf = io.BytesIO()
        np.save(buf, X16, allow_pickle=False)
        data = buf.getbuffer()
        npy, meta = self._paths(i)
        try:
            with atomic_file(npy, "wb") as f:
                f.write(data)
            write_json_atomic(meta, {"start": start, "shape": list(want), "dtype": STORE_DTYPE.name,
                                     "sha256": hashlib.sha256(data).hexdigest(), "version": _VERSION})
        except OSError as exc:
            if _is_disk_full(exc):
                raise disk_full_error(self.folder, f"writing chunk {i} of {self.n_chunks}, "
                                                   f"{len(data) / 2**20:.1f} MB") from exc
            raise

    def open(self) -> "FeatureArray":
        """All chunks as one read-only :class:`FeatureArray` (they must be complete).

        Taught in: 00_speech_commands
        """
        return FeatureArray([str(self._paths(i)[0]) for i in range(self.n_chunks)], self.chunk_rows, self.n_rows,
                            self.row_shape)


def _sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):  # 4 MB reads: no memory map, no RSS
            h.update(block)
    return h.hexdigest()


class FeatureArray:
    """A read-only float32 view of float16 chunk files, shape (N, frames, n_features).

    Indexing reads only the rows asked for, through memory maps, and returns an ordinary float32
    ndarray: ``X[i]`` (frames, n_features); ``X[a:b]``, ``X[mask]``, ``X[[3, 1, 2]]`` (k, frames,
    n_features); ``X[:, 0]`` and other tuples index the rows first. ``np.asarray(X)`` reads the
    whole array (fine for a validation or test split; at full scale use :meth:`gather` or
    batches). :meth:`subset` returns a view of a contiguous range without reading anything.

    Taught in: 00_speech_commands
    """

    dtype = np.dtype(np.float32)
    ndim = 3
    #: read from disk on demand (:func:`thinlab.train.fit` gathers mini-batches instead of loading it)
    memory_mapped = True

    def __init__(self, paths, chunk_rows: int, n_rows: int, row_shape, start: int = 0, stop: int | None = None):
        self._paths, self._chunk_rows, self._n_all = list(paths), int(chunk_rows), int(n_rows)
        self._row_shape = tuple(row_shape)
        self._start, self._stop = int(start), int(n_rows if stop is None else stop)
        self._maps = None

    # -- what an ndarray has
    @property
    def shape(self) -> tuple:
        """(N, frames, n_features), as an ndarray's. Taught in: 00_speech_commands"""
        return (self._stop - self._start, *self._row_shape)

    @property
    def size(self) -> int:
        """Number of values. Taught in: 00_speech_commands"""
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """Bytes as float32 (what ``np.asarray`` would allocate). Taught in: 00_speech_commands"""
        return self.size * 4

    @property
    def stored_nbytes(self) -> int:
        """Bytes of the values on disk (float16). Taught in: 00_speech_commands"""
        return self.size * STORE_DTYPE.itemsize

    def __len__(self) -> int:
        return self._stop - self._start

    def __repr__(self) -> str:
        return (f"FeatureArray(shape={self.shape}, float16 on disk in {len(self._paths)} chunks "
                f"under {Path(self._paths[0]).parent if self._paths else '?'}, read as float32)")

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a FeatureArray is read from disk: np.asarray always copies it")
        out = self._read_range(0, len(self))
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self):
        for s in range(0, len(self), 256):
            yield from self._read_range(s, min(len(self), s + 256))

    def astype(self, dtype, copy=True):
        """The whole array read into an ndarray of ``dtype``. Taught in: 00_speech_commands"""
        return np.asarray(self, dtype=dtype)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_maps"}

    def __setstate__(self, state):
        self.__dict__.update(state, _maps=None)

    # -- reading
    def _map(self, c: int):
        if self._maps is None:
            self._maps = [None] * len(self._paths)
        if self._maps[c] is None:
            mapped = np.load(self._paths[c], mmap_mode="r", allow_pickle=False)
            self._maps[c] = mapped.view(np.ndarray)  # a plain ndarray over the same mapped pages
        return self._maps[c]

    def _read_range(self, a: int, b: int) -> np.ndarray:
        """Rows a … b-1 (relative to this view), contiguous."""
        out = np.empty((max(0, b - a), *self._row_shape), np.float32)
        g, end, pos = self._start + a, self._start + b, 0
        while g < end:
            c, off = divmod(g, self._chunk_rows)
            n = min(end - g, self._chunk_rows - off)
            out[pos:pos + n] = self._map(c)[off:off + n]
            g, pos = g + n, pos + n
        return out

    def gather(self, idx) -> np.ndarray:
        """Rows ``idx`` (any order, repeats allowed) as float32 (len(idx), frames, n_features).

        The rows are read in sorted order, chunk by chunk, so a sorted ``idx`` reads the file
        front to back; :func:`thinlab.train.fit` sorts each mini-batch for that reason.

        Taught in: 00_speech_commands
        """
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx[(idx < -n) | (idx >= n)][0]
            raise IndexError(f"index {bad} is out of bounds for a FeatureArray of {n} rows")
        idx = np.where(idx < 0, idx + n, idx) + self._start
        order = np.argsort(idx, kind="stable")
        rows = idx[order]
        out = np.empty((idx.size, *self._row_shape), np.float32)
        chunk = rows // self._chunk_rows
        cuts = np.flatnonzero(np.diff(chunk)) + 1
        for part in np.split(np.arange(rows.size), cuts):
            if part.size:
                c = int(chunk[part[0]])
                out[order[part]] = self._map(c)[rows[part] - c * self._chunk_rows]
        return out

    def subset(self, start: int, stop: int) -> "FeatureArray":
        """Rows ``start`` … ``stop``-1 as a FeatureArray, without reading them.

        Taught in: 00_speech_commands
        """
        start, stop, _ = slice(start, stop).indices(len(self))
        return FeatureArray(self._paths, self._chunk_rows, self._n_all, self._row_shape, self._start + start,
                            self._start + max(start, stop))

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            if any(k is Ellipsis or k is None for k in key):  # rare: read everything, let numpy index it
                return np.asarray(self)[key]
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        if key is Ellipsis:
            return np.asarray(self)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} is out of bounds for a FeatureArray of {len(self)} rows")
            out = self._read_range(i % len(self), i % len(self) + 1)[0]
            return out[rest] if rest else out
        if isinstance(key, slice):
            a, b, step = key.indices(len(self))
            out = self._read_range(a, b) if step == 1 else self.gather(np.arange(a, b, step))
        else:
            sel = np.asarray(key)
            if sel.dtype == bool:
                if sel.shape != (len(self),):
                    raise IndexError(f"boolean index of shape {sel.shape} does not match the {len(self)} rows")
                sel = np.flatnonzero(sel)
            elif sel.size and not np.issubdtype(sel.dtype, np.integer):
                raise IndexError(f"a FeatureArray is indexed by ints, slices or boolean masks, not {sel.dtype}")
            out = self.gather(sel.reshape(-1)).reshape(*sel.shape, *self._row_shape)
        return out[(slice(None),) * (out.ndim - len(self._row_shape)) + rest] if rest else out


def row_bytes(row_shape) -> int:
    """float32 bytes of one clip's features. Taught in: 00_speech_commands"""
    return 4 * int(np.prod(row_shape))


def use_memmap(storage: str, n_rows: int, row_shape) -> bool:
    """Whether ``storage`` (``"auto"``, ``"memory"`` or ``"memmap"``) memory-maps ``n_rows`` clips.

    ``"auto"`` memory-maps when the float32 features would exceed :data:`MEMMAP_BYTES` (256 MiB,
    about 16,000 one-second clips): the full data sets, not the sample or the synthetic set.
    ``$THINLAB_MEMMAP_BYTES`` overrides the limit (``0``: every set, so the lessons can be run the
    full-set way on small data).

    Taught in: 00_speech_commands
    """
    if storage == "memmap":
        return True
    limit = os.environ.get("THINLAB_MEMMAP_BYTES", "").strip()     # a lower limit runs small sets the full-set way
    try:
        limit = int(limit) if limit else MEMMAP_BYTES
    except ValueError:
        raise ValueError(f"THINLAB_MEMMAP_BYTES={limit!r}: expected a whole number of bytes (0 memory-maps every "
                         "set), or unset it") from None
    return storage == "auto" and n_rows * row_bytes(row_shape) > limit
