"""The explorers: a slider move recomputes what the kernels compute and redraws the chart.

Each explorer is moved to two values through its slider (as a student would); the chart data
and the readout must change, and the numbers must equal the kernels' own. ``evaluate`` must be
called with the compressed weight (once per value). Bad inputs raise clear errors.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from thinlab.nn import methods

from thinlab import deepthin
from thinlab.deepthin import deepthin_size, glorot_std, init_factors, reconstruct, unrelayout
from thinlab.lowrank import lowrank_bytes, ranks_sweep, truncated_svd
from thinlab.prune import csr_break_even_density, csr_bytes, magnitude_mask, magnitude_prune, masked_bytes
from thinlab.quant import (best_frac_bits, dequantize, fixed_point, fixed_point_bytes, kmeans_bytes,
                           kmeans_dequantize, kmeans_quantize, multibit_bytes, multibit_dequantize,
                           multibit_quantize, omse_clip, quantize_uniform, quantized_bytes)
from thinlab.widgets import bits_explorer, deepthin_explorer, prune_explorer, rank_explorer
from thinlab.widgets.plots import crop

VL5 = "application/vnd.vegalite.v5+json"


@pytest.fixture(scope="module")
def W() -> np.ndarray:
    return (np.random.default_rng(0).normal(size=(48, 40)) * 0.1).astype(np.float32)


class Spy:
    """An ``evaluate`` that records the weights it is given and returns a made-up accuracy."""

    def __init__(self):
        self.calls: list[np.ndarray] = []

    def __call__(self, weight):
        self.calls.append(np.array(weight, copy=True))
        return 0.5 + 0.4 * float(np.tanh(np.abs(weight).sum()))


def _move(ex, value):
    """Move the slider like a student would; return what the chart and readout then showed."""
    ex.slider.value = value
    return ex.spec["datasets"], ex.readout.value, dict(ex.state)


def _two_moves(ex, a, b):
    data_a, text_a, state_a = _move(ex, a)
    data_b, text_b, state_b = _move(ex, b)
    assert data_a != data_b, "the chart's data did not change with the slider"
    assert text_a != text_b, "the readout did not change with the slider"
    assert ex.chart.to_dict()["datasets"] == data_b  # the altair chart is the last one drawn, and validates
    return state_a, state_b


def _check_common(ex):
    assert ex.slider.continuous_update is False
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
    # the chart sits in the Output as a display_data set directly (no output capture: see Explorer._draw)
    (shown,) = ex.output.outputs
    assert shown["output_type"] == "display_data" and shown["data"][VL5]["datasets"] == ex.spec["datasets"]
    assert shown["metadata"][VL5]["embed_options"]["renderer"] == "svg"
    assert ex.output.msg_id == ""


# ------------------------------------------------------------------ prune

def test_prune_explorer_moves_and_matches_kernels(W):
    spy = Spy()
    ex = prune_explorer(W, evaluate=spy, sparsity=0.5)
    _check_common(ex)
    s_a, s_b = _two_moves(ex, 0.3, 0.8)
    for s, state in ((0.3, s_a), (0.8, s_b)):
        pruned = magnitude_prune(W, sparsity=s)
        nnz = int(np.count_nonzero(pruned))
        assert state["nnz"] == nnz
        assert state["csr_bytes"] == csr_bytes(W.shape, nnz)
        assert state["masked_bytes"] == masked_bytes(W.shape, nnz)
        assert state["break_even_density"] == csr_break_even_density(W.shape)
        assert state["threshold"] == pytest.approx(float(np.abs(W[pruned == 0]).max()))
    assert f"{s_b['csr_bytes']:,} B" in ex.readout.value
    # the rules sit at ± the threshold; the mask image shows each weight of the corner, kept or pruned
    assert ex.spec["datasets"]["threshold"] == [{"at": -s_b["threshold"]}, {"at": s_b["threshold"]}]
    rows = ex.spec["datasets"]["mask"]
    shown = np.zeros(crop(W).shape, dtype=bool)
    for r in rows:
        shown[r["row"], r["column"]] = r["state"] == "kept"
        assert r["value"] == pytest.approx(float(W[r["row"], r["column"]]))
    assert len(rows) == shown.size and np.array_equal(shown, crop(magnitude_mask(W, sparsity=0.8)))
    # evaluate got the pruned weight, once per value (memoised)
    assert np.array_equal(spy.calls[-1], magnitude_prune(W, sparsity=0.8))
    n = len(spy.calls)
    ex.slider.value = 0.3
    assert len(spy.calls) == n and ex.state["accuracy"] == s_a["accuracy"]
    assert "accuracy" in ex.readout.value


def test_prune_mask_equals_kernel_with_ties_and_zeros():
    W = np.array([[0.0, 1.0, -1.0, 0.5], [0.5, -0.5, 0.0, 2.0], [1.0, 1.0, -2.0, 0.25]], dtype=np.float32)
    ex = prune_explorer(W, sparsity=0.0)
    for s in np.linspace(0, 0.99, 23):
        assert np.array_equal(ex.mask(s), magnitude_mask(W, sparsity=s)), s
        state = ex.update(float(s))
        assert state["nnz"] == np.count_nonzero(magnitude_prune(W, sparsity=s))


def test_update_moves_the_slider(W):
    ex = prune_explorer(W)
    ex.update(0.7)
    assert ex.slider.value == 0.7 and ex.state["sparsity"] == 0.7


# ------------------------------------------------------------------ rank

def test_rank_explorer_moves_and_matches_kernels(W):
    spy = Spy()
    ex = rank_explorer(W, evaluate=spy, rank=4)
    _check_common(ex)
    s_a, s_b = _two_moves(ex, 2, 12)
    sweep = {row["rank"]: row for row in ranks_sweep(W, ranks=[2, 12])}
    for k, state in ((2, s_a), (12, s_b)):
        assert state["relative_error"] == pytest.approx(sweep[k]["relative_error"], rel=1e-9, abs=1e-12)
        assert state["error"] == pytest.approx(sweep[k]["error"], rel=1e-9, abs=1e-12)
        assert state["bytes"] == lowrank_bytes(W.shape, k) == sweep[k]["bytes"]
        assert state["energy"] == pytest.approx(sweep[k]["energy"])
    A, B = truncated_svd(W, rank=12)
    np.testing.assert_allclose(spy.calls[-1], A @ B, atol=1e-5)
    corner = np.array([r["value"] for r in ex.spec["datasets"]["approx"]]).reshape(crop(W).shape)
    np.testing.assert_allclose(corner, crop(A @ B), atol=1e-5)
    assert ex.spec["datasets"]["rank"] == [{"at": 12.5}]
    assert s_b["relative_error"] < s_a["relative_error"]


# ------------------------------------------------------------------ deepthin

def test_deepthin_explorer_moves_and_matches_kernels(W):
    spy = Spy()
    ex = deepthin_explorer(W, evaluate=spy, factor=5)
    _check_common(ex)
    assert ex.factors == [f for f in (2, 3, 5, 7, 10, 15, 20) if f <= 1 / ex.lower_bound]
    s_a, s_b = _two_moves(ex, 2.0, 7.0)
    for f, state in ((2.0, s_a), (7.0, s_b)):
        size = deepthin_size(*W.shape, size_fraction=1 / f)
        assert (state["m"], state["n"], state["r"], state["gcd"]) == (size.m, size.n, size.r, size.gcd)
        assert state["bytes"] == size.bytes and state["size_fraction"] == size.size_fraction
        assert state["gcd"] == math.gcd(size.n, W.shape[0])
    # the weight handed to evaluate is the DeepThin reconstruction of the best rank-r fit of W_aux
    size = deepthin_size(*W.shape, size_fraction=1 / 7)
    sol = ex.solve(7.0)
    W_hat = reconstruct(sol["Xf"], sol["Wf"], Q=W.shape[0], R=W.shape[1])
    np.testing.assert_array_equal(spy.calls[-1], W_hat)
    assert s_b["relative_error"] == pytest.approx(np.linalg.norm(W - W_hat) / np.linalg.norm(W))
    s = np.linalg.svd(unrelayout(W, m=size.m, n=size.n).astype(np.float64), compute_uv=False)
    fit = np.linalg.norm(unrelayout(W, m=size.m, n=size.n) - sol["Xf"].astype(np.float64) @ sol["Wf"])
    assert fit == pytest.approx(np.sqrt((s[size.r:] ** 2).sum()), rel=1e-5)
    assert s_a["relative_error"] < s_b["relative_error"]
    # the n-rule toggle re-solves: "aligned" prefers n dividing Q
    ex.layout.value = "aligned"
    aligned = deepthin_size(*W.shape, size_fraction=1 / 7, layout="aligned")
    assert (ex.state["n"], ex.state["gcd"], ex.state["layout"]) == (aligned.n, aligned.gcd, "aligned")


def test_deepthin_explorer_from_a_shape_uses_the_paper_init():
    ex = deepthin_explorer((64, 48), factor=10, seed=3)
    size = deepthin_size(64, 48, size_fraction=0.1)
    Xf, Wf = init_factors(size.m, size.n, size.r, target_std=glorot_std(64, 48), rng=3)
    np.testing.assert_array_equal(ex.reconstruct(10), reconstruct(Xf, Wf, Q=64, R=48))
    assert "relative_error" not in ex.state and ex.state["r"] == size.r
    _two_moves(ex, 3.0, 20.0)


# ------------------------------------------------------------------ bits

def _kernel_bits(W, method, b):
    """(dequantised weight, bytes) straight from thinlab.quant."""
    if method in ("uniform", "omse"):
        clip = omse_clip(W, n_bits=b, symmetric=True) if method == "omse" else None
        q = quantize_uniform(W, n_bits=b, symmetric=True, clip=clip)
        return dequantize(q), quantized_bytes(q)
    if method == "kmeans":
        res = kmeans_quantize(W, n_clusters=2 ** b)
        return kmeans_dequantize(res), kmeans_bytes(res)
    if method == "fixed":
        F = best_frac_bits(W, word_bits=b)
        return fixed_point(W, word_bits=b, frac_bits=F), fixed_point_bytes(W.shape, word_bits=b)
    mb = multibit_quantize(W, n_bits=b)
    return multibit_dequantize(mb), multibit_bytes(mb)


@pytest.mark.parametrize("method", ["uniform", "omse", "kmeans", "fixed", "multibit"])
def test_bits_explorer_moves_and_matches_kernels(W, method):
    spy = Spy()
    ex = bits_explorer(W, method=method, evaluate=spy, n_bits=4)
    _check_common(ex)
    states = _two_moves(ex, 2, 6)
    for b, state in zip((2, 6), states):
        deq, nbytes = _kernel_bits(W, method, b)
        assert state["bytes"] == nbytes and state["n_bits"] == b
        assert state["method"] == methods.get(method).name     # "uniform" is the registry's alias of "uniform_sym"
        mse = float(np.mean((W.astype(np.float64) - deq) ** 2))
        assert state["mse"] == pytest.approx(mse, rel=1e-6)
        assert state["snr_db"] == pytest.approx(10 * np.log10(np.sum(W.astype(np.float64) ** 2) / (mse * W.size)))
    np.testing.assert_allclose(spy.calls[-1], deq.astype(np.float32), rtol=0, atol=1e-7)
    # every dequantised value is one of the levels drawn
    levels = np.array([r["at"] for r in ex.spec["datasets"]["levels"]])
    assert np.abs(deq.ravel()[:, None] - levels[None, :]).min(axis=1).max() < 1e-6
    assert states[1]["snr_db"] > states[0]["snr_db"]


def test_bits_method_menu_moves_the_slider_minimum(W):
    ex = bits_explorer(W, method="kmeans", n_bits=1)
    assert ex.state["n_bits"] == 1 and ex.slider.min == 1
    ex.method.value = "fixed"
    assert ex.slider.min == 2 and ex.slider.value == 2
    assert ex.state["method"] == "fixed" and ex.state["n_bits"] == 2
    assert ex.state["frac_bits"] == best_frac_bits(W, word_bits=2)


# ------------------------------------------------------------------ bad inputs

FACTORIES = [prune_explorer, rank_explorer, deepthin_explorer, bits_explorer]


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize("bad, err, words", [
    (np.ones(5, dtype=np.float32), ValueError, "2-D"),
    (np.ones((2, 3, 4), dtype=np.float32), ValueError, "2-D"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "NaN"),
    (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError, "inf"),
    (np.ones((3, 3), dtype=np.int64), TypeError, "float"),
    (np.ones((0, 3), dtype=np.float32), ValueError, "no elements"),
])
def test_bad_weights_raise_clear_errors(factory, bad, err, words):
    with pytest.raises(err, match=words):
        factory(bad)


@pytest.mark.parametrize("factory", FACTORIES)
def test_evaluate_must_be_callable_and_return_a_number(factory, W):
    with pytest.raises(TypeError, match="callable"):
        factory(W, evaluate=0.9)
    with pytest.raises(TypeError, match="one finite number"):
        factory(W, evaluate=lambda w: "90%")


def test_bad_slider_values_raise(W):
    with pytest.raises(ValueError, match="sparsity"):
        prune_explorer(W, sparsity=1.5)
    with pytest.raises(ValueError, match="rank"):
        rank_explorer(W, rank=41)
    with pytest.raises(ValueError, match="method"):
        bits_explorer(W, method="ternary")
    with pytest.raises(ValueError, match="n_bits"):
        bits_explorer(W, method="uniform", n_bits=1)
    with pytest.raises(ValueError, match="not one of"):
        deepthin_explorer(W, factor=4)
    with pytest.raises(ValueError, match="at most"):
        deepthin_explorer(W, factors=[1000, 5000])
    with pytest.raises(ValueError, match="> 1"):
        deepthin_explorer(W, factors=[0.5])
    with pytest.raises(ValueError, match="positive"):
        deepthin_explorer((0, 5))
    with pytest.raises(ValueError, match="layout"):
        deepthin_explorer(W, layout="square")


# ------------------------------------------------------------------ where students meet them

def _explorers(W, evaluate=None):
    return {"prune": prune_explorer(W, sparsity=0.95, evaluate=evaluate),
            "rank": rank_explorer(W, evaluate=evaluate),
            "deepthin": deepthin_explorer(W, evaluate=evaluate),
            "bits": bits_explorer(W, evaluate=evaluate)}


@pytest.fixture(scope="module")
def W_big() -> np.ndarray:
    """A layer as wide as the lessons' hidden layers, so images and legends have their full size."""
    return (np.random.default_rng(1).normal(size=(256, 192)) * 0.05).astype(np.float32)


def test_explorers_fit_a_900px_column_and_follow_the_chart_rules(W_big):
    import re

    import vl_convert

    from thinlab import charts
    from thinlab.widgets.base import MAX_WIDTH

    for name, ex in _explorers(W_big).items():
        assert not charts.lint(ex.spec), (name, charts.lint(ex.spec))
        svg = vl_convert.vegalite_to_svg(charts.to_vl5(ex.spec), vl_version=charts.VL5_VERSION)
        width = float(re.search(r'<svg[^>]*\swidth="([\d.]+)"', svg).group(1))
        assert width <= MAX_WIDTH, f"the {name} explorer's chart is {width:.0f} px wide (> {MAX_WIDTH})"
        # the controls wrap instead of running past the column
        assert ex.widget.children[0].layout.flex_flow == "row wrap"
        assert ex.output.layout.overflow == "auto"


@pytest.mark.parametrize("sparsity", [0.1, 0.99])
def test_mask_image_draws_every_kept_weight_distinct_at_any_sparsity(W_big, sparsity):
    """Rendered offline, the mask shows one dark square per kept weight of the corner and a light one per
    pruned weight: at 99 % sparsity the few survivors stand out (the old density image was nearly white)."""
    import vl_convert

    from thinlab import charts
    from thinlab.widgets.plots import MASK_COLORS

    ex = prune_explorer(W_big, sparsity=sparsity)
    mask = crop(magnitude_mask(W_big, sparsity=sparsity))
    svg = vl_convert.vegalite_to_svg(charts.to_vl5(ex.spec), vl_version=charts.VL5_VERSION)
    kept = svg.count(f'fill="{MASK_COLORS["kept"]}"') - 1    # one more for the legend's symbol
    pruned = svg.count(f'fill="{MASK_COLORS["pruned"]}"') - 1
    assert (kept, pruned) == (int(mask.sum()), int((~mask).sum()))
    assert 0 < kept < mask.size

    def luminance(hex_colour):
        r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(MASK_COLORS["kept"]), luminance(MASK_COLORS["pruned"])), reverse=True)
    assert (hi + 0.05) / (lo + 0.05) >= 4.5, "kept and pruned must differ clearly (WCAG contrast ≥ 4.5)"


def _static_parts(bundle):
    """(the PNG bytes, the HTML) of an explorer's static image in a display bundle."""
    import base64
    import re

    page = bundle["text/html"]
    b64 = re.search(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page).group(1)
    return base64.b64decode(b64), page


def test_a_saved_explorer_shows_a_note_and_its_last_state(W, monkeypatch):
    """Headless (no kernel here; THINLAB_HEADLESS=1 in papermill runs): the display bundle keeps the live
    widget's view, says in text what it is instead of ``VBox(children=…``, and carries a static PNG of the
    chart as drawn, its readout and the note; displaying ``.widget`` itself gives the same."""
    from thinlab.widgets.base import NOTE

    monkeypatch.setenv("THINLAB_HEADLESS", "1")
    for ex in _explorers(W).values():
        ex.update(ex.slider.options[1][1] if hasattr(ex.slider, "options") else ex.slider.min + ex.slider.step)
        bundle = ex._repr_mimebundle_()
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
        assert "VBox(" not in bundle["text/plain"] and NOTE in bundle["text/plain"]
        assert ex.name in bundle["text/plain"] and bundle["text/plain"] == ex.note()
        png, page = _static_parts(bundle)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
        assert NOTE in page and ex.readout.value in page   # the last state's numbers, as the readout showed them
        assert ex.widget._repr_mimebundle_().keys() == bundle.keys()
        assert any(NOTE in getattr(c, "value", "") for c in ex.widget.children)  # the widget says it too
    monkeypatch.setenv("THINLAB_HEADLESS", "0")   # a person at a live front end: the widget, no image
    live = prune_explorer(W)
    bundle = live._repr_mimebundle_()
    assert "text/html" not in bundle and NOTE in bundle["text/plain"]
    assert not any(NOTE in getattr(c, "value", "") for c in live.widget.children)


def test_executed_notebook_saves_static_explorers_not_widget_reprs(tmp_path):
    """A notebook executed headless (nbclient, as papermill and the grader do) with an explorer: its saved
    outputs hold no raw ``VBox(`` text, and an image of the chart with the note."""
    import nbformat
    from nbclient import NotebookClient

    from thinlab._progress import headless_env
    from thinlab.widgets.base import NOTE

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import numpy as np\nfrom thinlab.widgets import prune_explorer, rank_explorer\n"
        "W = np.random.default_rng(0).normal(size=(40, 32)).astype(np.float32)\n"
        "explorer = prune_explorer(W, sparsity=0.9)\nexplorer"),
        nbformat.v4.new_code_cell("display(rank_explorer(W, rank=3).widget)")])
    with headless_env():
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outs = [o for c in nb.cells for o in c.outputs]
    assert not [o for o in outs if o.output_type == "error"], outs
    shown = [o for o in outs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(shown) == 2
    for o in shown:
        assert "VBox(" not in o.data["text/plain"] and NOTE in o.data["text/plain"]
        png, page = _static_parts(o.data)
        assert png[:4] == b"\x89PNG" and NOTE in page
    assert "sparsity 0.90" in shown[0].data["text/plain"] and "rank 3" in shown[1].data["text/plain"]
    assert "VBox(" not in nbformat.writes(nb).replace("VBoxModel", "").replace("VBoxView", "")


# ------------------------------------------------------------------ DeepThin's opening factor

def test_deepthin_opens_where_the_projection_still_scores(W):
    """With ``evaluate`` and no factor, the explorer opens at a factor it computed: one whose projected layer
    keeps ``keep`` of the dense score above chance (0 by default), no factor above it does (here the score
    falls with the factor)."""
    norm = float(np.linalg.norm(W))
    calls = []

    def score(w):   # 1 at the dense W, falling as the projection loses more of it
        calls.append(1)
        return 1.0 - float(np.linalg.norm(W - w)) / norm

    probe = deepthin_explorer(W, factor=2)
    all_scores = [score(probe.reconstruct(f)) for f in probe.factors]
    assert all(a >= b for a, b in zip(all_scores, all_scores[1:])), "the fixture's score should fall with the factor"
    keep = (all_scores[1] + all_scores[2]) / 2    # so the answer is the second factor
    calls.clear()
    ex = deepthin_explorer(W, evaluate=score, keep=keep)
    f = ex.opening["factor"]
    assert f == probe.factors[1] and ex.state["target_factor"] == f
    assert ex.opening["accuracy"] == pytest.approx(all_scores[1]) and ex.opening["dense"] == pytest.approx(1.0)
    assert ex.state["accuracy"] == pytest.approx(all_scores[1])
    # the dense W, then the lesson's rule scans from the largest factor down and stops at the answer
    assert len(calls) == 1 + len(probe.factors) - 1
    assert "opened at" in ex.readout.value and "at least" in ex.readout.value
    # nothing keeps a share above 1: it opens at the smallest factor and says so
    low = deepthin_explorer(W, evaluate=lambda w: score(w) - 0.5, baseline=1.0, keep=0.99)
    assert low.opening["factor"] == probe.factors[0] and "no factor" in low.opening["why"]
    # asked for a factor, or nothing to judge by: no search
    assert deepthin_explorer(W, evaluate=score, factor=7).opening == {"factor": 7.0, "why": "as asked"}
    assert deepthin_explorer(W).opening["factor"] == min(probe.factors, key=lambda v: abs(math.log(v / 10)))
    with pytest.raises(ValueError, match="keep"):
        deepthin_explorer(W, evaluate=score, keep=1.5)


def _scored_by_factor(W, table: dict):
    """An ``evaluate`` that returns ``table[f]`` for the explorer's projection at factor f (matched exactly)."""
    probe = deepthin_explorer(W, factor=min(table))
    recon = {f: probe.reconstruct(f) for f in table}

    def evaluate(w):
        (f,) = [f for f, r in recon.items() if np.array_equal(w, r)]
        return table[f]
    return evaluate


def test_deepthin_opening_is_the_lessons_rule(W):
    """The widget's own opening and lesson 03's ``explorer_start`` are one rule: the largest factor whose
    projection keeps half the dense accuracy above chance. A dip in the middle of the curve (which a
    bisection would stop at) does not change the answer; both paths give the same factor and sentence."""
    from thinlab.experiments import deepthin_study as study

    factors = deepthin_explorer(W, factor=2).factors            # 2 … 20 for this layer
    assert factors == [2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0]
    table = {2.0: 0.9, 3.0: 0.3, 5.0: 0.3, 7.0: 0.3, 10.0: 0.8, 15.0: 0.1, 20.0: 0.1}
    evaluate = _scored_by_factor(W, table)
    ex = deepthin_explorer(W, evaluate=evaluate, baseline=0.9, chance=0.1)
    rows = [{"factor": f, "accuracy": evaluate(ex.reconstruct(f))} for f in ex.factors]
    start, why = study.explorer_start(rows, baseline=0.9, chance=0.1)
    assert ex.opening["factor"] == start == 10.0 and ex.opening["why"] == why
    assert ex.opening["chance"] == 0.1 and ex.opening["keep"] == deepthin.OPENING_KEEP
    assert ex.opening["bar"] == pytest.approx(0.1 + 0.5 * (0.9 - 0.1))
    assert why in ex.readout.value
    # chance moves the bar: at chance 0.4 the bar is 0.65, and 10x (0.8) still keeps it; at 0.75 only 2x does
    for chance in (0.0, 0.4, 0.75):
        got = deepthin_explorer(W, evaluate=evaluate, baseline=0.9, chance=chance).opening
        assert (got["factor"], got["why"]) == study.explorer_start(rows, baseline=0.9, chance=chance)
    assert deepthin_explorer(W, evaluate=evaluate, baseline=0.9, chance=0.75).opening["factor"] == 2.0
    # a dense model at chance: both open at the smallest factor and say why
    near = deepthin_explorer(W, evaluate=evaluate, baseline=0.11, chance=0.1).opening
    assert (near["factor"], near["why"]) == study.explorer_start(rows, baseline=0.11, chance=0.1)
    assert near["factor"] == 2.0 and "near chance" in near["why"]
    with pytest.raises(ValueError, match="chance"):
        deepthin_explorer(W, evaluate=evaluate, chance=1.5)


def test_explorer_plots_take_log_axes_and_index_ticks_from_charts():
    """widgets/plots.py keeps no copy of the chart internals: its log axes use charts' label expressions (which
    charts.tick_label, the lint's width estimate, recognises) and its image axes charts' index ticks."""
    from thinlab import charts
    from thinlab.widgets import plots

    assert plots.log_axis is charts.log_axis and plots.index_ticks is charts.index_ticks
    hist = plots.histogram("h", "r", title="weights", max_count=5000).to_dict()
    y = hist["layer"][0]["encoding"]["y"]
    assert y["axis"]["labelExpr"] == charts.LABEL_SI and y["scale"]["domain"][0] == 0.5 and y["scale"]["clamp"]
    curve = plots.curve("c", "m", x="rank", y="err", title="error", y_range=(1e-4, 1)).to_dict()
    assert curve["layer"][0]["encoding"]["y"]["axis"]["labelExpr"] == charts.LABEL_SMALL
    img = plots.image("d", shape=(64, 64), title="W", domain=[-1, 1]).to_dict()
    assert img["encoding"]["x"]["axis"]["values"] == charts.index_ticks(64, k=4) == [0, 20, 40, 60]
