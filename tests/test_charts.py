"""The offline rendering path and the chart builders."""
from __future__ import annotations

import altair as alt
import nbformat
import numpy as np
import pytest

from thinlab import charts

VL5 = "application/vnd.vegalite.v5+json"


def _bundle(chart):
    b = chart._repr_mimebundle_()
    return b[0] if isinstance(b, tuple) else b


def _data(spec):
    """All inline data rows of a (possibly layered / concatenated) spec (not axis tick ``values``)."""
    rows = []
    if isinstance(spec, dict):
        for k, v in spec.items():
            if k == "values" and isinstance(v, list) and all(isinstance(r, dict) for r in v):
                rows += v
            else:
                rows += _data(v)
    elif isinstance(spec, list):
        for v in spec:
            rows += _data(v)
    return rows


BUILDERS = {
    "waveform": lambda: charts.waveform(np.sin(np.linspace(0, 100, 16000))),
    "spectrogram": lambda: charts.spectrogram(np.random.default_rng(0).normal(size=(101, 40))),
    "heatmap": lambda: charts.heatmap(np.arange(12.0).reshape(3, 4), domain_mid=0),
    "confusion": lambda: charts.confusion(np.eye(3, dtype=int) * 5, ["a", "b", "c"]),
    "bars": lambda: charts.bars([{"m": "cnn", "acc": 0.9, "split": "s"}, {"m": "dnn", "acc": 0.8, "split": "r"}],
                                x="m", y="acc", color="split"),
    "lines": lambda: charts.lines([{"x": 1, "y": 0.5, "k": "a", "e": 0.1}, {"x": 2, "y": 0.7, "k": "a", "e": 0.1}],
                                  x="x", y="y", color="k", error="e", x_scale="log"),
    "histogram": lambda: charts.histogram(np.random.default_rng(0).normal(size=1000), rules=[-0.5, 0.5]),
    "history": lambda: charts.history([{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.4, "lr": 1e-3}]),
}


def test_thinlab_renderer_is_active_on_import():
    assert alt.renderers.active == "thinlab"


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_builder_renders_offline_and_validates(name):
    bundle = _bundle(BUILDERS[name]())
    assert set(bundle) == {VL5, "image/svg+xml", "text/plain"}
    assert bundle[VL5]["$schema"].startswith("https://vega.github.io/schema/vega-lite/v5")
    svg = bundle["image/svg+xml"]
    assert svg.lstrip().startswith("<svg") and "</svg>" in svg and "http" not in svg.split(">", 1)[0].replace(
        "http://www.w3.org", "")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "chart", outputs=[nbformat.v4.new_output("display_data", data=bundle)])])
    nbformat.validate(nb)  # raises on an invalid output (the `mimetype` renderer's v6 key fails here)


def test_svg_can_be_turned_off_for_fast_redraws():
    with charts.svg_fallback(False):
        bundle = _bundle(BUILDERS["heatmap"]())
    assert "image/svg+xml" not in bundle and VL5 in bundle
    assert "image/svg+xml" in _bundle(BUILDERS["heatmap"]())


def test_static_html_export_shows_the_svg():
    from nbconvert import HTMLExporter

    bundle = _bundle(BUILDERS["confusion"]())
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "chart", outputs=[nbformat.v4.new_output("display_data", data=bundle)])])
    html, _ = HTMLExporter().from_notebook_node(nb)
    body = html.split("<body", 1)[1]
    assert "data:image/svg+xml" in body or "<svg" in body  # nbconvert inlines the SVG, no script needed
    assert "vega-embed" not in body


def test_heatmap_data_is_the_matrix():
    rows = _data(_bundle(charts.heatmap(np.arange(6.0).reshape(2, 3)))[VL5])
    assert sorted(r["value"] for r in rows) == [0, 1, 2, 3, 4, 5]
    assert {(r["row"], r["column"]) for r in rows} == {(i, j) for i in range(2) for j in range(3)}


def test_block_reduce_averages_blocks():
    M = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(charts.block_reduce(M, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert charts.block_reduce(np.ones((1000, 70)), 64).shape == (62, 35)  # 1000 rows in blocks of ceil(1000/64) = 16


def test_confusion_counts_preserved():
    cm = np.array([[3, 1], [0, 4]])
    rows = _data(_bundle(charts.confusion(cm, ["yes", "no"]))[VL5])
    got = {(r["true"], r["predicted"]): r["count"] for r in rows}
    assert got == {("yes", "yes"): 3, ("yes", "no"): 1, ("no", "yes"): 0, ("no", "no"): 4}


def test_histogram_counts_all_values():
    v = np.random.default_rng(1).normal(size=777)
    rows = _data(_bundle(charts.histogram(v, bins=10))[VL5])
    assert sum(r["count"] for r in rows if "count" in r) == 777
