"""The full-set path at small sizes: chunked float16 feature store (resume after a real kill, damaged
chunks, a full disk), memory-mapped loading, streamed statistics and mini-batches, the training cap."""
from __future__ import annotations

import errno
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from thinlab import models, train
from thinlab.data import DataError, FeatureCacheWarning, load_dataset
from thinlab.data import store as store_mod
from thinlab.data.store import FeatureArray, FeatureCacheFullError
from thinlab.experiments import compare

ROOT = Path(__file__).resolve().parents[1]
KW = dict(progress=False, verbose=False)


def _f16_close(a, b):
    """``b`` is ``a`` rounded to float16: within half a float16 step of each value."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    assert a.shape == b.shape
    np.testing.assert_array_equal(b, a.astype(np.float16).astype(np.float32))


def _chunks(cache):
    (folder,) = (cache / "features").glob("*.f16")
    return folder, sorted(folder.glob("chunk-*.npy")), sorted(folder.glob("chunk-*.json"))


@pytest.fixture()
def small_chunks(monkeypatch):
    """8 clips per chunk, so the 100-clip real fixture makes 13 chunks."""
    monkeypatch.setattr(store_mod, "CHUNK_ROWS", 8)
    return 8


@pytest.fixture()
def memory_ds(real_fixture, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THINLAB_CACHE", str(tmp_path_factory.mktemp("ref-cache")))
        return load_dataset(real_fixture, storage="memory", **KW)


def test_memmap_dataset_is_the_float32_one_rounded_to_float16(real_fixture, tmp_cache, small_chunks, memory_ds):
    ds = load_dataset(real_fixture, storage="memmap", **KW)
    assert ds.cache_status == "computed" and isinstance(ds.X_train, FeatureArray)
    for k in ("train", "val", "test"):
        X, ref = getattr(ds, f"X_{k}"), getattr(memory_ds, f"X_{k}")
        assert X.shape == ref.shape and X.dtype == np.float32 and len(X) == len(ref)
        _f16_close(ref, X)
        for name in ("y", "files", "speakers"):
            np.testing.assert_array_equal(getattr(ds, f"{name}_{k}"), getattr(memory_ds, f"{name}_{k}"))
    folder, npys, metas = _chunks(tmp_cache)
    assert len(npys) == len(metas) == 13 and (folder / "key.json").is_file()
    assert sum(p.stat().st_size for p in npys) < 0.51 * 100 * 101 * 40 * 4  # float16: half of float32's bytes
    again = load_dataset(real_fixture, storage="memmap", **KW)
    assert again.cache_status == "cache" and np.array_equal(np.asarray(again.X_test), np.asarray(ds.X_test))
    assert "10 classes" in again.describe()


def test_feature_array_indexes_like_an_ndarray(real_fixture, tmp_cache, small_chunks):
    X = load_dataset(real_fixture, storage="memmap", **KW).X_train
    A = np.asarray(X)
    assert A.dtype == np.float32 and A.shape == X.shape == (80, 101, 40) and X.ndim == 3 and X.size == A.size
    mask = np.zeros(len(X), bool)
    mask[[0, 7, 8, 79]] = True
    for key in (3, -1, np.int64(9), slice(5, 21), slice(None, None, 3), slice(30, 2, -4), [17, 2, 2, 70],
                np.array([[1, 9], [8, 0]]), mask, (slice(2, 12), 0), (4, slice(None), 5), ([3, 1], 2)):
        np.testing.assert_array_equal(X[key], A[key], err_msg=repr(key))
    np.testing.assert_array_equal(X.gather([9, 8, 7, 8]), A[[9, 8, 7, 8]])
    sub = X.subset(6, 20)
    assert isinstance(sub, FeatureArray) and sub.shape == (14, 101, 40)
    np.testing.assert_array_equal(sub[2:5], A[8:11])
    np.testing.assert_array_equal(np.stack(list(sub)), A[6:20])
    back = pickle.loads(pickle.dumps(sub))
    np.testing.assert_array_equal(np.asarray(back), A[6:20])
    np.testing.assert_array_equal(np.concatenate([X[:3], sub[:2]]), np.concatenate([A[:3], A[6:8]]))
    with pytest.raises(IndexError, match="out of bounds"):
        X[80]
    with pytest.raises(IndexError, match="out of bounds"):
        X.gather([0, -81])
    with pytest.raises(IndexError, match="boolean index"):
        X[mask[:10]]


def test_streamed_statistics_match_numpy_and_never_read_the_whole_set(real_fixture, tmp_cache, small_chunks,
                                                                      monkeypatch):
    rng = np.random.default_rng(0)
    Z = (rng.standard_normal((37, 11, 5)) * [1, 2, 3, 4, 5] + [0, -3, 100, 7, 1e3]).astype(np.float32)
    for rows in (1, 7, 37, 1000):
        mean, std = train.feature_stats(Z, chunk_rows=rows)
        Z64 = Z.astype(np.float64)
        np.testing.assert_allclose(mean, Z64.mean(axis=(0, 1)), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(std, Z64.std(axis=(0, 1)), rtol=1e-9)
    with pytest.raises(ValueError, match=r"shape \(N, frames, n_mels\)"):
        train.feature_stats(np.zeros((0, 11, 5), np.float32))

    X = load_dataset(real_fixture, storage="memmap", **KW).X_train
    A = np.asarray(X, dtype=np.float64)

    def refuse(*a, **k):
        raise AssertionError("the whole memory-mapped array was read")

    monkeypatch.setattr(FeatureArray, "__array__", refuse)
    mean, std = train.feature_stats(X, chunk_rows=8)
    np.testing.assert_allclose(mean, A.mean(axis=(0, 1)), rtol=1e-10)
    np.testing.assert_allclose(std, A.std(axis=(0, 1)), rtol=1e-10)
    net = models.build_model("dnn", 10)
    train.set_input_stats(net, X)
    np.testing.assert_allclose(net.norm.mean.numpy(), mean, rtol=1e-6)


def test_fit_gathers_shuffled_batches_from_the_memory_map(real_fixture, tmp_cache, small_chunks, monkeypatch):
    ds = load_dataset(real_fixture, storage="memmap", **KW)
    X_mem = np.asarray(ds.X_train)   # the same float32 values, in memory

    def trained(X):
        train.seed_everything(0)
        net = models.build_model("dnn", 10, hidden=(32, 32), dropout=0.0)  # no dropout: batch order is all that differs
        hist = train.fit(net, X, ds.y_train, epochs=3, batch_size=16, progress=False)
        return net, hist

    reads = []
    real_gather = FeatureArray.gather

    def counting(self, idx):
        idx = np.asarray(idx)
        reads.append(idx)
        return real_gather(self, idx)

    with monkeypatch.context() as mp:
        mp.setattr(FeatureArray, "gather", counting)
        mp.setattr(FeatureArray, "__array__", lambda *a, **k: pytest.fail("fit read the whole set"))
        net_map, hist_map = trained(ds.X_train)
    net_mem, hist_mem = trained(X_mem)
    assert len(reads) == 3 * 5 and all(len(r) == 16 and np.all(np.diff(r) > 0) for r in reads)  # sorted batches
    assert sorted(np.concatenate(reads[:5]).tolist()) == list(range(80))  # each epoch sees every clip once
    assert reads[0].tolist() != reads[5].tolist()  # reshuffled each epoch
    np.testing.assert_allclose(hist_map.train_loss, hist_mem.train_loss, rtol=1e-4)
    for a, b in zip(net_map.state_dict().values(), net_mem.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    on_device = train._to_device(ds.X_train, torch.device("cpu"))  # what fit does for a GPU, a block at a time
    assert torch.equal(on_device, torch.from_numpy(X_mem))
    mmap = np.lib.format.open_memmap(tmp_cache / "plain.npy", mode="w+", dtype=np.float16, shape=X_mem.shape)
    mmap[:] = X_mem
    net_np, _ = trained(np.load(tmp_cache / "plain.npy", mmap_mode="r"))  # a plain np.memmap works too
    for a, b in zip(net_np.state_dict().values(), net_mem.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_float16_features_keep_the_predictions(real_fixture, memory_ds):
    """The same trained model on float32 and on float16-rounded features of real clips."""
    ds = memory_ds
    train.seed_everything(0)
    net = models.build_model("dnn", 10)
    train.fit(net, ds.X_train, ds.y_train, epochs=8, progress=False)
    X = np.concatenate([ds.X_train, ds.X_val, ds.X_test])
    X16 = X.astype(np.float16).astype(np.float32)
    net.eval()
    with torch.no_grad():
        a, b = net(torch.from_numpy(X)), net(torch.from_numpy(X16))
    agree = float((a.argmax(1) == b.argmax(1)).float().mean())
    assert agree >= 0.99, agree
    assert float((a - b).abs().max()) < 0.05 * float(a.abs().max())


_KILLED_RUN = textwrap.dedent("""
    import sys, time
    from thinlab.data import load_dataset, parallel, store
    store.CHUNK_ROWS = 8
    real = parallel.compute_chunk
    def slow(*args, **kwargs):  # a slow machine: each chunk takes a quarter second more
        time.sleep(0.25)
        return real(*args, **kwargs)
    parallel.compute_chunk = slow
    load_dataset(sys.argv[1], storage="memmap", progress=False, verbose=False)
    print("finished")
""")


def test_featurization_killed_midway_resumes_from_its_chunks(real_fixture, tmp_cache, small_chunks, memory_ds):
    env = dict(os.environ, THINLAB_CACHE=str(tmp_cache), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(real_fixture)], env=env, cwd=ROOT,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((tmp_cache / "features").glob("*.f16/chunk-*.json"))) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes, mid-write
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    assert b"finished" not in out
    folder, npys, metas = _chunks(tmp_cache)
    assert 2 <= len(metas) < 13
    with warnings.catch_warnings():
        warnings.simplefilter("error", FeatureCacheWarning)  # an unfinished chunk is not damage: no warning
        ds = load_dataset(real_fixture, storage="memmap", **KW)
    kept = int(ds.cache_status.split()[1])
    assert ds.cache_status == f"resumed: {kept} of 13 chunks from the cache" and kept == len(metas)
    for k in ("train", "val", "test"):
        _f16_close(getattr(memory_ds, f"X_{k}"), getattr(ds, f"X_{k}"))
    assert load_dataset(real_fixture, storage="memmap", **KW).cache_status == "cache"


def test_damaged_chunks_are_recomputed_with_a_warning(real_fixture, tmp_cache, small_chunks, memory_ds):
    load_dataset(real_fixture, storage="memmap", **KW)
    folder, npys, metas = _chunks(tmp_cache)
    raw = bytearray(npys[2].read_bytes())
    raw[-5] ^= 0xFF  # one flipped byte: same size, same header
    npys[2].write_bytes(bytes(raw))
    np.save(npys[5], np.zeros((7, 101, 40), np.float16))  # a chunk of the wrong shape
    npys[7].write_bytes(npys[7].read_bytes()[:300])  # cut short
    metas[9].write_text("{not json")
    metas[11].unlink()  # .npy written, .json not yet: an unfinished chunk, silently redone
    with pytest.warns(FeatureCacheWarning) as record:
        ds = load_dataset(real_fixture, storage="memmap", **KW)
    text = "\n".join(str(w.message) for w in record)
    assert "chunk-000002.npy is damaged: its sha256 differs" in text
    assert "chunk-000005.npy is damaged: it holds float16 of shape (7, 101, 40), expected" in text
    assert "chunk-000007.npy is damaged" in text and "chunk-000009.npy is damaged: it cannot be read" in text
    assert "chunk-000011" not in text and len(record) == 4
    assert ds.cache_status == "resumed: 8 of 13 chunks from the cache"
    for k in ("train", "val", "test"):
        _f16_close(getattr(memory_ds, f"X_{k}"), getattr(ds, f"X_{k}"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_dataset(real_fixture, storage="memmap", **KW).cache_status == "cache"


def test_a_foreign_key_empties_the_store(real_fixture, tmp_cache, small_chunks):
    load_dataset(real_fixture, storage="memmap", **KW)
    folder, _, _ = _chunks(tmp_cache)
    (folder / "key.json").write_text('{"other": "key"}')
    with pytest.warns(FeatureCacheWarning, match="made for other parameters or files"):
        assert load_dataset(real_fixture, storage="memmap", **KW).cache_status == "computed"


def test_a_full_disk_names_the_cache_and_keeps_the_finished_chunks(real_fixture, tmp_cache, small_chunks,
                                                                   monkeypatch):
    with monkeypatch.context() as mp:
        mp.setattr(store_mod.shutil, "disk_usage", lambda p: type("U", (), {"free": 10_000})())
        with pytest.raises(FeatureCacheFullError, match=r"13 chunks need 1 MB, the disk has 0 MB free") as info:
            load_dataset(real_fixture, storage="memmap", **KW)
    msg = str(info.value)
    assert str(tmp_cache / "features") in msg and f"THINLAB_CACHE={tmp_cache}" in msg
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    real_atomic = store_mod.atomic_file

    def full_after_four(path, mode="wb"):  # the disk fills up while chunk 4 is written
        if Path(path).name.startswith("chunk-") and int(Path(path).stem.split("-")[1]) >= 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_atomic(path, mode)

    monkeypatch.setattr(store_mod, "atomic_file", full_after_four)
    with pytest.raises(FeatureCacheFullError, match="THINLAB_CACHE") as info:
        load_dataset(real_fixture, storage="memmap", **KW)
    assert "no space left for the feature cache in" in str(info.value) and "resumes" in str(info.value)
    monkeypatch.setattr(store_mod, "atomic_file", real_atomic)
    assert load_dataset(real_fixture, storage="memmap", **KW).cache_status.startswith("resumed: 4 of 13")


def test_storage_choice(real_fixture, tmp_cache, monkeypatch):
    assert not store_mod.use_memmap("auto", 100, (101, 40)) and store_mod.use_memmap("auto", 38_546, (101, 40))
    assert store_mod.use_memmap("memmap", 1, (101, 40)) and not store_mod.use_memmap("memory", 10**6, (101, 40))
    monkeypatch.setattr(store_mod, "MEMMAP_BYTES", 1000)
    assert isinstance(load_dataset(real_fixture, **KW).X_val, FeatureArray)  # "auto" above the threshold
    assert isinstance(load_dataset(real_fixture, cache=False, **KW).X_val, np.ndarray)
    with pytest.raises(DataError, match="storage='disk' is unknown; use 'auto'"):
        load_dataset(real_fixture, storage="disk", **KW)
    with pytest.raises(TypeError, match="storage=1 is unknown"):
        load_dataset(real_fixture, storage=1, **KW)


def test_max_train_caps_every_run_with_the_same_clips(memory_ds):
    ds = memory_ds
    keep = compare.train_subset(80, 30)
    assert len(keep) == 30 and np.all(np.diff(keep) > 0) and np.array_equal(keep, compare.train_subset(80, 30))
    assert compare.train_subset(80, None) is None and compare.train_subset(80, 80) is None
    small = dict(hidden=(16, 16))
    a = compare.train_compressed(ds, method="deepthin", size_fraction=0.3, epochs=1, model_kwargs=small,
                                 max_train=30)
    b = compare.train_compressed(ds, method="dense", epochs=1, model_kwargs=small, max_train=30, seed=1)
    c = compare.train_compressed(ds, method="lowrank", size_fraction=0.3, epochs=1, model_kwargs=small)
    assert a["n_train"] == b["n_train"] == 30 and c["n_train"] == 80 and len(ds.y_train) == 80
    for bad in (0, -3, 2.5, True, "100"):
        with pytest.raises(ValueError, match=r"max_train=.* must be a whole number ≥ 1"):
            compare.train_compressed(ds, method="deepthin", size_fraction=0.3, max_train=bad)


def test_a_worker_that_dies_is_reported_and_its_finished_chunks_kept(real_fixture, tmp_cache, small_chunks,
                                                                     memory_ds, monkeypatch):
    from thinlab.data import parallel

    parent, doomed = os.getpid(), memory_ds.files_train[48]  # the first clip of chunk 6 (training rows come first)
    real = parallel.compute_chunk

    def killed_on_chunk_6(reader, rows, params):  # as the kernel's out-of-memory killer would
        if rows[0][0] == doomed and os.getpid() != parent:
            os._exit(137)
        return real(reader, rows, params)

    monkeypatch.setattr(parallel, "compute_chunk", killed_on_chunk_6)
    monkeypatch.setattr(train, "available_cpus", lambda: 2)  # two forked workers even on a 1-CPU runner
    with pytest.raises(DataError, match=r"a feature worker process died .*run the same call again to resume"):
        load_dataset(real_fixture, storage="memmap", **KW)
    monkeypatch.setattr(parallel, "compute_chunk", real)
    ds = load_dataset(real_fixture, storage="memmap", **KW)
    assert ds.cache_status.startswith("resumed: ") and "of 13 chunks" in ds.cache_status
    _f16_close(memory_ds.X_train, ds.X_train)
