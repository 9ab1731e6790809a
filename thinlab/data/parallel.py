"""Featurizing a large set: chunks of clips computed in parallel processes, each written to the
chunked cache (:class:`~thinlab.data.store.ChunkStore`) as soon as it is done.

One worker process per CPU this process may use (:func:`thinlab.train.available_cpus`: the
affinity mask capped by a container's CPU quota), each with one BLAS thread, so that two workers
on a 2-core machine do not fight over the cores; one progress bar in the calling process. A
worker reads and featurizes its chunk (in batches of 256 clips, ~16 MB of audio) and writes it
itself, so no feature array passes between processes. Workers are forked where the platform
allows (Linux: instant start, no re-import of the calling script), else spawned.

An interrupted run (Ctrl-C, a kill, a full disk) keeps every chunk that was finished; the next
call computes only the rest.

Taught in: 00_speech_commands
"""
from __future__ import annotations

import json
import multiprocessing
import sys
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from ._io import DataError
from .audio import SAMPLE_RATE
from .features import FeatureParams, compute_features
from . import store as _store
from .store import ChunkStore, FeatureCacheFullError, _is_disk_full, disk_full_error

#: clips featurized at once inside a chunk (bounds a worker's memory: STFT of 256 clips ≈ 50 MB)
BATCH = 256
_STATE: dict = {}


def _reader(root, background, seed, aug):
    from .dataset import _ClipReader  # here, not at the top: dataset imports this module
    from .layout import Folder

    return _ClipReader(Folder(root=Path(root), background=list(background)), seed, aug)


def compute_chunk(reader, rows, params: FeatureParams) -> np.ndarray:
    """float32 features of ``rows`` (a list of ``(rel, copy)``), shape (len(rows), frames, n_features).

    Taught in: 00_speech_commands
    """
    out = np.empty((len(rows), params.n_frames(SAMPLE_RATE), params.n_features), np.float32)
    for s in range(0, len(rows), BATCH):
        batch = np.stack([reader(rel, c) for rel, c in rows[s:s + BATCH]])  # (b, 16000)
        out[s:s + len(batch)] = compute_features(batch, params)
    return out


def _init_worker(root, background, seed, aug, params):
    from thinlab._threads import set_threads

    set_threads(1)  # one thread per worker: the workers share the cores
    _STATE.update(reader=_reader(root, background, seed, aug), params=params)


def _work(store: ChunkStore, i: int, rows) -> int:
    store.write(i, compute_chunk(_STATE["reader"], rows, _STATE["params"]))
    return len(rows)


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") and "fork" in methods else "spawn")


def fill_store(store: ChunkStore, rows, *, root, background=(), seed: int = 0, aug=None,
               params: FeatureParams = FeatureParams(), workers: int | None = None, progress: bool = True,
               desc: str = "features") -> list:
    """Compute and write every chunk of ``store`` that is missing or damaged.

    Parameters
    ----------
    store : ChunkStore
    rows : list of (rel, copy), length ``store.n_rows``
        What each row is: a clip path under ``root`` (or a background window) and its
        augmentation copy (0 = the clip itself).
    root, background, seed, aug
        For the clip reader (see :func:`thinlab.data.load_dataset`).
    params : FeatureParams
    workers : int, optional
        Processes; default :func:`thinlab.train.available_cpus`. 1 computes in this process.
    progress : bool
        One tqdm bar over all rows.

    Returns
    -------
    list of int
        The chunks computed now (empty when all were in the cache).

    Raises
    ------
    FeatureCacheFullError
        When the cache's disk is full (checked before starting, and on every write).

    Taught in: 00_speech_commands
    """
    from thinlab._progress import progress as tqdm  # text bars when headless

    if len(rows) != store.n_rows:
        raise ValueError(f"{len(rows)} rows for a store of {store.n_rows}")
    store.prepare()
    todo = store.missing()
    if not todo:
        return []
    store.check_space(todo)
    if workers is None:
        from thinlab.train import available_cpus

        workers = available_cpus()
    workers = max(1, min(int(workers), len(todo)))
    done_rows = store.n_rows - sum(b - a for a, b in map(store.bounds, todo))
    what = f"{desc} ({workers} processes)" if workers > 1 else desc
    bar = tqdm(total=store.n_rows, initial=done_rows, desc=what, unit="clip", disable=not progress)
    try:
        if workers == 1:
            reader = _reader(root, background, seed, aug)
            for i in todo:
                a, b = store.bounds(i)
                store.write(i, compute_chunk(reader, rows[a:b], params))
                bar.update(b - a)
        else:
            ex = ProcessPoolExecutor(workers, mp_context=_context(), initializer=_init_worker,
                                     initargs=(str(root), list(background), seed, aug, params))
            try:
                pending = {ex.submit(_work, store, i, rows[slice(*store.bounds(i))]) for i in todo}
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for f in finished:
                        bar.update(f.result())  # re-raises a worker's error here
            finally:
                ex.shutdown(wait=True, cancel_futures=True)  # chunks being written finish; queued ones never start
    except OSError as exc:
        if _is_disk_full(exc) and not isinstance(exc, FeatureCacheFullError):
            raise disk_full_error(store.folder, str(exc)) from exc
        raise
    except BrokenProcessPool as exc:
        raise DataError(f"a feature worker process died ({exc}), most likely killed for lack of memory. The chunks "
                        f"it finished are kept in {store.folder}: run the same call again to resume, after closing "
                        "other programs if memory is short.") from exc
    finally:
        bar.close()
    return todo


def featurize_to_store(key: dict, rows, *, folder, seed: int = 0, aug=None, params: FeatureParams = FeatureParams(),
                       progress: bool = True, workers: int | None = None) -> tuple:
    """The features of ``rows`` as a memory-mapped :class:`~thinlab.data.store.FeatureArray`, from the
    chunked cache, computing (in parallel) whatever chunks are missing.

    Parameters
    ----------
    key : dict
        Everything the features depend on (as for :func:`thinlab.data.features.cached`); the
        storage format (float16, chunk size) is added to it.
    rows : list of (rel, copy)
    folder : Folder
        The scanned data folder (its ``root`` and ``background``).

    Returns
    -------
    X : FeatureArray, float32 view, shape (len(rows), frames, n_features)
    status : str
        ``"cache"``, ``"computed"`` or ``"resumed: k of n chunks from the cache"``.

    Taught in: 00_speech_commands
    """
    full = dict(key, store={"dtype": _store.STORE_DTYPE.name, "chunk_rows": _store.CHUNK_ROWS,
                            "version": _store._VERSION})
    text = json.dumps(full, sort_keys=True, allow_nan=False)
    st = ChunkStore(text, len(rows), (params.n_frames(SAMPLE_RATE), params.n_features),
                    chunk_rows=_store.CHUNK_ROWS)
    done = fill_store(st, rows, root=folder.root, background=folder.background, seed=seed, aug=aug, params=params,
                      workers=workers, progress=progress, desc=f"{params.kind} features")
    if not done:
        status = "cache"
    elif len(done) == st.n_chunks:
        status = "computed"
    else:
        status = f"resumed: {st.n_chunks - len(done)} of {st.n_chunks} chunks from the cache"
    return st.open(), status
