"""The method registry's contract, in the spirit of scikit-learn's ``check_estimator``: every
registered method goes through the same checks, so a new method is one registry entry plus its kernel.

For every method :func:`thinlab.nn.compress` can apply (each option it takes: quantised stored
tensors, bitmask storage): the budget is met, the size report equals what the saved file holds
(its arrays, plus the shapes and seeds its JSON metadata keeps; the rest is the container), reload
gives identical outputs, the model trains, and bad parameters get a clear error. For every
post-training quantiser: the bytes are the kernel's, the error falls with bits, bad bits are refused.
"""
from __future__ import annotations

import ast
import pathlib
import re

import numpy as np
import pytest
import torch

from thinlab.models import build_model
from thinlab.nn import compress, load_compressed, methods, save_compressed, size_report

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _variants():
    """(method, kwargs) for every registered compression method and each option it declares."""
    out = []
    for name in methods.names("make"):
        m = methods.get(name)
        base = {"size_fraction": 0.25} if m.sized_by == "size_fraction" else {"n_bits": max(m.bits[0], 4)}
        out.append((name, base))
        if m.takes_quant_bits:
            out.append((name, {**base, "quant_bits": 6}))
        if m.takes_storage:
            out.append((name, {**base, "storage": "bitmask", "size_fraction": 0.6}))
    return out


VARIANTS = _variants()
IDS = [f"{n}-" + "-".join(f"{k}{v}" for k, v in kw.items()) for n, kw in VARIANTS]


@pytest.fixture(scope="module")
def dnn():
    torch.manual_seed(0)
    return build_model("dnn", 10, n_frames=20, n_mels=8, hidden=(64, 48))


def _x(n=16, seed=1):
    return torch.randn(n, 20, 8, generator=torch.Generator().manual_seed(seed))


def test_every_compression_method_is_covered():
    assert set(methods.METHODS) == {n for n, _ in VARIANTS}
    for n in methods.METHODS:
        m = methods.get(n)
        assert m.label and re.fullmatch(r"0\d_[a-z0-9_]+", m.lesson), m
        assert all(callable(f) for f in (m.make, m.export, m.load, m.check_file)), n
        assert (m.plan is not None) == (m.sized_by == "size_fraction"), n


SHAPES = {"hidden.0": (80, 64), "hidden.1": (64, 48), "out": (48, 10)}   # paper (Q, R) of the test DNN


@pytest.mark.parametrize("name,kw", VARIANTS, ids=IDS)
def test_budget_is_met(dnn, name, kw):
    m = methods.get(name)
    small = compress(dnn, method=name, **kw)
    rows = {r.name[:-len(".weight")]: r for r in size_report(small).layers if r.method not in ("dense", "buffer")}
    assert {k: (r.dense_bytes // 4 // SHAPES[k][1], SHAPES[k][1]) for k, r in rows.items()} == SHAPES
    stored, dense = sum(r.bytes for r in rows.values()), sum(r.dense_bytes for r in rows.values())
    if m.sized_by == "n_bits" or "quant_bits" in kw:
        assert stored < dense                                 # sized by bits: fewer bytes than float32
        return
    assert stored <= kw["size_fraction"] * dense + 1e-9, (stored, dense)
    if not m.plans_network:                                   # planned per layer: every layer meets it
        assert all(r.bytes <= kw["size_fraction"] * r.dense_bytes + 1e-9 for r in rows.values())
    if "storage" not in kw:                                   # the plan's bytes are exactly what is stored
        layout = m.layout(SHAPES, kw["size_fraction"]) if m.plans_network else None
        if layout is not None:
            assert layout["bytes"] == stored
        for k, r in rows.items():
            detail = (layout["detail"][k] if layout else m.plan({k: SHAPES[k]}, kw["size_fraction"])[k])
            assert m.layer_bytes(SHAPES[k], detail) == r.bytes, (k, detail)


@pytest.mark.parametrize("name,kw", VARIANTS, ids=IDS)
def test_saved_file_holds_the_reported_bytes_and_reloads_identically(dnn, name, kw, tmp_path):
    small = compress(dnn, method=name, **kw).eval()
    rep = size_report(small)
    path = tmp_path / "m.npz"
    size = save_compressed(small, path)
    with np.load(path) as z:
        payload = sum(z[k].nbytes for k in z.files if k != "__meta__")
        n_arrays = len(z.files)
    compressed = [r for r in rep.layers if r.method not in ("dense", "buffer")]
    # the report = the arrays + each compressed layer's shape (and hash / shuffle seed), kept in the JSON
    extra = rep.total_bytes - payload
    assert 0 <= extra <= 24 * len(compressed), (rep.total_bytes, payload)
    assert 0 < size - payload <= 400 * n_arrays + 3000          # the container: zip and .npy headers, JSON
    again = load_compressed(path)
    with torch.no_grad():
        torch.testing.assert_close(again(_x()), small(_x()), rtol=0, atol=0)
    assert size_report(again).total_bytes == rep.total_bytes


@pytest.mark.parametrize("name,kw", VARIANTS, ids=IDS)
def test_the_compressed_model_trains(dnn, name, kw):
    small = compress(dnn, method=name, **kw).eval()          # eval: no dropout, so a fixed batch's loss must fall
    x, y = _x(32), torch.arange(32) % 10
    opt = torch.optim.Adam(small.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in small.hidden[0].parametrizations.weight.parameters()]
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(small(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert any(not torch.equal(a, b.detach()) for a, b in
               zip(before, small.hidden[0].parametrizations.weight.parameters()))


@pytest.mark.parametrize("name", methods.METHODS)
def test_bad_parameters_get_a_clear_error(dnn, name):
    m = methods.get(name)
    if m.sized_by == "size_fraction":
        with pytest.raises(ValueError, match=r"size_fraction=1\.5 must be .*e\.g\. 0\.05"):
            compress(dnn, method=name, size_fraction=1.5)
        with pytest.raises(ValueError, match="pass n_bits=… instead|applies to methods"):
            compress(dnn, method=name, size_fraction=0.1, n_bits=4)
    else:
        lo, hi = m.bits
        with pytest.raises(ValueError, match=rf"n_bits={hi + 1}.*takes {lo} … {hi}"):
            compress(dnn, method=name, n_bits=hi + 1)
        with pytest.raises(ValueError, match="pass n_bits"):
            compress(dnn, method=name, size_fraction=0.1)
    if not m.takes_quant_bits:
        with pytest.raises(ValueError, match="quant_bits"):
            compress(dnn, method=name, quant_bits=4, **({"size_fraction": 0.1} if m.sized_by == "size_fraction"
                                                        else {"n_bits": 4}))


def test_unknown_and_duplicate_methods_are_refused():
    with pytest.raises(ValueError, match=r"unknown method 'zip'.*choose one of \('prune'"):
        methods.get("zip")
    with pytest.raises(TypeError, match="choose one of"):
        methods.get(None)
    with pytest.raises(ValueError, match="registered already"):
        methods.register(methods.Method("prune", "again", "01_pruning", "size_fraction"))
    assert methods.get("uniform").name == "uniform_sym"     # an alias resolves to its method


@pytest.mark.parametrize("name", methods.names("quantize"))
def test_every_quantiser_counts_its_bytes_and_improves_with_bits(name):
    m = methods.get(name)
    W = np.random.default_rng(0).normal(0, 0.05, (64, 48)).astype(np.float32)
    lo, hi = m.bits
    few, many = m.quantize(W, max(lo, 2)), m.quantize(W, min(hi, 8))
    for q in (few, many):
        assert q.W_hat.shape == W.shape and q.codes.shape == W.shape and q.codes.max() < q.n_symbols
        assert q.code_bytes <= q.bytes < W.nbytes                # packed codes + side information < float32
    err = [float(np.sum((W - q.W_hat) ** 2)) for q in (few, many)]
    assert err[1] < err[0]
    with pytest.raises(ValueError, match=rf"takes an integer number of bits in \[{lo}, {hi}\]"):
        m.check_bits(hi + 1)


def _method_dispatch(path: pathlib.Path) -> list[str]:
    """``x == "name"`` / ``x in ("a", "b")`` comparisons of a variable called ``method`` (or ``….method``)
    with a registered method's name: a dispatch that belongs in the registry."""
    hits = []
    registered = set(methods.REGISTRY) | {"dense", "narrow"}
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        left = node.left
        named = (isinstance(left, ast.Name) and left.id == "method") or \
            (isinstance(left, ast.Attribute) and left.attr == "method")
        if not named:
            continue
        for comp in node.comparators:
            consts = [comp] if isinstance(comp, ast.Constant) else \
                list(comp.elts) if isinstance(comp, (ast.Tuple, ast.List, ast.Set)) else []
            if any(isinstance(c, ast.Constant) and c.value in registered for c in consts):
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return hits


def test_no_method_dispatch_outside_the_registry():
    files = [p for p in (ROOT / "thinlab").rglob("*.py") if p.name != "methods.py"] + \
        list((ROOT / "widgets").rglob("*.py"))
    hits = [h for p in files for h in _method_dispatch(p)]
    assert not hits, f"branches on a method's name outside thinlab/nn/methods.py: {hits}"
