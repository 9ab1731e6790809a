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
    "lines_log": lambda: charts.lines([{"n": 10 ** i, "err": 2.0 ** -i, "k": "a"} for i in range(6)], x="n", y="err",
                                      color="k", log_x=True, log_y=True, dash="k"),
    "bars_log_horizontal": lambda: charts.bars([{"v": "a", "b": 1200, "r": "x"}, {"v": "b", "b": 5e5, "r": "y"}],
                                               x="v", y="b", color="r", offset=False, log_y=True, horizontal=True),
    "histogram_log_x": lambda: charts.histogram(np.abs(np.random.default_rng(0).normal(size=500)), log_x=True),
    "layer_rules_band": lambda: charts.layer(
        charts.band(0.4, 0.6, label="baseline ± 2 SE"), charts.rules([0.5], label="baseline"),
        charts.rules([2, 4], axis="x", label=["two", "four"], color="crimson"),
        charts.lines([{"x": i, "y": i / 10} for i in range(1, 8)], x="x", y="y", width=300)),
    "grid": lambda: charts.grid([BUILDERS["heatmap"](), BUILDERS["bars"](), BUILDERS["waveform"]()], columns=2),
    "scatter": lambda: charts.scatter(MANY, x="bytes", y="acc", color="method", shape="method", label="method",
                                      log_x=True),
    "waterfall": lambda: charts.waterfall([{"stage": "dense", "bytes": 1_800_000}, {"stage": "prune", "bytes": 900_000},
                                           {"stage": "quant", "bytes": 40_000}]),
    "small_multiples": lambda: charts.small_multiples(
        [{"c": j, "w": float(np.sin(j + i)), "row": f"row {i}", "m": m} for m in ("W", "rank 1") for i in range(3)
         for j in range(8)], x="c", y="w", facet="m", color="row", columns=2),
    "image_grid": lambda: charts.image_grid({"W": np.eye(4) - 0.5, "rank 1": np.ones((4, 4))}, domain_mid=0),
    "categorical_heatmap": lambda: charts.categorical_heatmap(
        [{"row": i, "column": j, "t": 3 * i + j, "src": str((3 * i + j) // 4)} for i in range(3) for j in range(3)],
        x="column", y="row", color="src", text="t"),
}
MANY = [{"method": m, "bytes": float(10 ** (4 + k / 5)), "acc": 0.5 + k / 40}
        for k, m in enumerate(["dense", "prune", "lowrank", "deepthin", "hashed", "narrow", "quant: uniform",
                               "quant: kmeans", "quant: log", "quant: per-channel", "pipeline", "distilled", "alone"])]


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


# ------------------------------------------------------------------ house style: log axes, colours, lint

def _svg_texts(chart):
    import re
    return re.findall(r"<text[^>]*>([^<]*)</text>", _bundle(chart)["image/svg+xml"])


def _encodings(spec):
    """(channel, encoding) for every unit of a nested spec."""
    out = []
    if isinstance(spec, dict):
        out += [(k, v) for k, v in spec.get("encoding", {}).items() if isinstance(v, dict)]
        for k in ("layer", "hconcat", "vconcat", "concat"):
            for s in spec.get(k, []):
                out += _encodings(s)
        out += _encodings(spec.get("spec"))
    return out


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_builder_passes_lint(name):
    assert charts.lint(BUILDERS[name]()) == []


def test_log_ticks_are_powers_of_ten_and_two_five_under_two_decades():
    assert charts.log_ticks(3, 40) == ([1, 2, 5, 10, 20, 50, 100], [1, 100])
    assert charts.log_ticks(1000, 1000) == ([1000, 2000, 5000, 10000], [1000, 10000])
    assert charts.log_ticks(0.02, 7) == ([0.01, 0.1, 1, 10], [0.01, 10])          # 2.5 decades: powers only
    assert charts.log_ticks(0.5, 20)[0] == [0.1, 1, 10, 100]      # 1.6 decades but widened to 3: powers only
    assert charts.log_ticks(0.15, 9)[0] == [0.1, 0.2, 0.5, 1, 2, 5, 10]
    ticks, dom = charts.log_ticks(2e-9, 6e4)                                        # 14 decades: every 2nd power
    assert ticks == [1e-9, 1e-7, 1e-5, 1e-3, 1e-1, 1e1, 1e3, 1e5] and dom == [1e-9, 1e5]
    assert len(charts.log_ticks(1, 1e30)[0]) <= charts.MAX_LOG_TICKS
    with pytest.raises(ValueError):
        charts.log_ticks(0, 10)


def test_log_axis_spec_and_rendered_labels():
    rows = [{"x": x, "y": y} for x, y in ((2e-9, 3.0), (1.0, 40.0), (6e4, 10.0))]
    chart = charts.lines(rows, x="x", y="y", log_x=True, log_y=True)
    enc = chart.to_dict()["encoding"]
    assert enc["x"]["scale"] == {"type": "log", "domain": [1e-9, 1e5], "nice": False, "clamp": False}
    assert enc["x"]["axis"]["values"] == [1e-9, 1e-7, 1e-5, 1e-3, 1e-1, 1e1, 1e3, 1e5]
    assert enc["x"]["axis"]["labelOverlap"] == "greedy"
    assert enc["y"]["axis"]["values"] == [1, 2, 5, 10, 20, 50, 100]
    texts = _svg_texts(chart)
    for label in ("1e-9", "1e-7", "1e-5", "1e-3", "0.1", "10", "1000", "1e5"):   # x
        assert label in texts
    for label in ("1", "2", "5", "10", "20", "50", "100"):                          # y
        assert label in texts
    bytes_axis = _svg_texts(charts.scatter([{"b": 2e4, "a": 1}, {"b": 3e6, "a": 2}], x="b", y="a", log_x=True))
    assert {"10k", "100k", "1M", "10M"} <= set(bytes_axis)


def test_log_axis_drops_nonpositive_rows_or_clamps_them_at_the_floor():
    rows = [{"k": k, "pct": p} for k, p in enumerate((5.0, 0.5, 0.0, 0.0))]
    dropped = _data(charts.lines(rows, x="k", y="pct", log_y=True).to_dict())
    assert [r["pct"] for r in dropped] == [5.0, 0.5]
    spec = charts.lines(rows, x="k", y="pct", log_y=True, floor=1e-3).to_dict()
    assert [r["pct"] for r in _data(spec)] == [5.0, 0.5, 1e-3, 1e-3]
    assert spec["encoding"]["y"]["scale"]["domain"][0] == 1e-3 and "drawn at 0.001" in spec["encoding"]["y"]["title"]
    assert charts.lint(spec) == []


def test_more_than_ten_colours_are_grouped():
    spec = BUILDERS["scatter"]().to_dict()
    colour = [e for ch, e in _encodings(spec) if ch == "color"][0]
    assert colour["field"] == "method family"
    fams = {r[colour["field"]] for r in _data(spec) if colour["field"] in r}
    assert fams == {"dense", "prune", "lowrank", "deepthin", "hashed", "narrow", "quant", "pipeline", "distilled",
                    "alone"}
    assert {r["method"] for r in _data(spec)} == {r["method"] for r in MANY}      # every name kept (tooltip/label)
    fam = [dict(r, family="quant" if r["method"].startswith("quant") else "other") for r in MANY]
    spec = charts.scatter(fam, x="bytes", y="acc", color="method", group="family").to_dict()
    assert [e for ch, e in _encodings(spec) if ch == "color"][0]["field"] == "family"
    many = [{"x": i, "y": i, "s": f"s{i}"} for i in range(30)]                       # no shared prefixes
    spec = charts.lines(many, x="x", y="y", color="s").to_dict()
    assert len({r["s family"] for r in _data(spec)}) == 10 and charts.lint(spec) == []
    assert [e for ch, e in _encodings(spec) if ch == "detail"][0]["field"] == "s"  # one line per series still


def test_heatmap_shows_titled_axes_and_spectrogram_puts_low_bands_at_the_bottom():
    enc = charts.heatmap(np.zeros((100, 300)), x="input", y="output").to_dict()["encoding"]
    assert enc["x"]["title"] == "input" and enc["y"]["title"] == "output"
    assert enc["x"]["axis"]["values"] == [0, 50, 100, 150, 200, 250] and enc["y"]["axis"]["values"] == [0, 20, 40, 60, 80]
    assert {"input", "output"} <= set(_svg_texts(charts.heatmap(np.zeros((3, 3)), x="input", y="output")))
    assert charts.spectrogram(np.zeros((101, 40))).to_dict()["encoding"]["y"]["sort"] == "descending"


def test_rules_band_layer_and_grid():
    spec = BUILDERS["layer_rules_band"]().to_dict()
    texts = _svg_texts(BUILDERS["layer_rules_band"]())
    assert {"baseline", "baseline ± 2 SE", "two", "four", "x", "y"} <= set(texts)
    assert "y, at" not in texts and spec["width"] == 300                   # one axis title; the child's size kept
    assert [r["at"] for r in _data(charts.rules([1, 2.5]).to_dict())] == [1.0, 2.5]
    with pytest.raises(ValueError):
        charts.rules([1, 2], label=["only one"])
    g = charts.grid([BUILDERS["heatmap"]() for _ in range(5)], columns=2).to_dict()
    assert [len(r["hconcat"]) for r in g["vconcat"]] == [2, 2, 1]
    assert "hconcat" in charts.grid([BUILDERS["heatmap"](), BUILDERS["bars"]()]).to_dict()


def test_waterfall_bars_span_consecutive_stages():
    rows = [r for r in _data(BUILDERS["waterfall"]().to_dict()) if "from" in r]
    assert [(r["from"], r["to"]) for r in rows] == [(1e4, 1_800_000), (1_800_000, 900_000), (900_000, 40_000)]
    assert [r["label"] for r in rows] == ["1,800,000", "÷2.0", "÷22.5"]


def test_dash_field_maps_first_value_solid():
    rows = [{"i": i, "s": 1.0 / i, "w": w} for w in ("trained", "fresh init") for i in (1, 2)]
    dash = charts.lines(rows, x="i", y="s", dash="w").to_dict()["encoding"]["strokeDash"]
    assert dash["scale"] == {"domain": ["trained", "fresh init"], "range": [[1, 0], [5, 3]]}


def test_wrap_title_splits_long_titles():
    t = "FP16 training: dynamic loss scale per step (skipped steps in red) and more words"
    lines = charts.wrap_title(t)
    assert isinstance(lines, list) and all(len(s) <= charts.TITLE_WIDTH for s in lines) and " ".join(lines) == t
    assert charts.wrap_title("short") == "short"


def _unit(**kw):
    return {"data": {"values": [{"a": i, "b": i + 1, "c": f"c{i}"} for i in range(12)]}, "mark": "point",
            "encoding": {"x": {"field": "a", "type": "quantitative"}, "y": {"field": "b", "type": "quantitative"}},
            **kw}


def _enc(**channels):
    good = _unit()["encoding"]
    return {**good, **channels}


def _rule_layer(text=True, label="target"):
    rows = [{"at": 5, "label": label}]
    rule = {"data": {"values": rows}, "mark": "rule", "encoding": {"x": {"field": "at", "type": "quantitative"}}}
    layer = [_unit(), rule]
    if text:
        layer.append({"data": {"values": rows}, "mark": "text",
                      "encoding": {"x": {"field": "at", "type": "quantitative"}, "text": {"field": "label"}}})
    return {"layer": layer, "width": 300}


def _heat(**axes):
    rows = [{"r": i, "c": j, "v": i * j} for i in range(4) for j in range(4)]
    enc = {"x": {"field": "c", "type": "ordinal", "title": "column"}, "y": {"field": "r", "type": "ordinal", "title": "row"},
           "color": {"field": "v", "type": "quantitative"}}
    for ch, extra in axes.items():
        enc[ch] = {**enc[ch], **extra}
    return {"data": {"values": rows}, "mark": "rect", "encoding": enc}


def _log_x(values, width=300, domain=(1, 1e6), **axis):
    rows = [{"a": v, "b": 1} for v in (domain[0], domain[1])]
    return {"data": {"values": rows}, "mark": "point", "width": width,
            "encoding": {"x": {"field": "a", "type": "quantitative", "scale": {"type": "log", "domain": list(domain)},
                               "axis": {"values": values, "labelOverlap": "greedy", **axis}},
                         "y": {"field": "b", "type": "quantitative"}}}


_MANY = [{"a": i, "b": i + 1, "c": f"c{i}"} for i in range(12)]
_LONG = "a legend label of well over thirty characters, cut"

# rule → (a spec that breaks it, a spec that keeps it)
RULE_CASES = {
    "rule 1 colours": (_unit(encoding=_enc(color={"field": "c", "type": "nominal"})),
                       _unit(encoding=_enc(color={"field": "a", "type": "quantitative"}))),
    "rule 1 colours across layers": (
        {"layer": [{"data": {"values": [r for r in _MANY if r["a"] < 6]}, "mark": "point",
                    "encoding": _enc(color={"field": "c", "type": "nominal"})},
                   {"data": {"values": [dict(r, c=f"d{r['a']}") for r in _MANY if r["a"] < 6]}, "mark": "line",
                    "encoding": _enc(color={"field": "c", "type": "nominal"})}]},
        {"layer": [{"data": {"values": [r for r in _MANY if r["a"] < 6]}, "mark": "point",
                    "encoding": _enc(color={"field": "c", "type": "nominal"})}]}),
    "rule 2 symlog": (_unit(encoding=_enc(y={"field": "b", "type": "quantitative", "scale": {"type": "symlog"},
                                             "axis": {"values": [0, 10]}})),
                      _unit(encoding=_enc(y={"field": "b", "type": "quantitative", "scale": {"type": "symlog"},
                                             "axis": {"values": [0, 1, 4, 13]}}))),
    "rule 3 log ticks": (_log_x([1e3], labelExpr=charts.LABEL_SI),             # one tick inside the domain
                         _log_x([1, 1e3, 1e6], labelExpr=charts.LABEL_SI)),
    "rule 3 log tickCount": (_unit(encoding=_enc(x={"field": "a", "type": "quantitative", "scale": {"type": "log"},
                                                     "axis": {"tickCount": 5, "labelOverlap": True}})),
                             _log_x([1, 100, 1e4, 1e6], labelExpr=charts.LABEL_SI)),
    "rule 4 heatmap axis hidden": (_heat(x={"axis": None}), _heat()),
    "rule 4 heatmap untitled": (_heat(y={"title": ""}), _heat(y={"title": "output unit"})),
    "rule 4 heatmap no labels": (_heat(x={"axis": {"labels": False}}), _heat(x={"axis": {"labelAngle": 0}})),
    "rule 5 title chars": (_unit(title="x" * 61), _unit(title=["x" * 40, "y" * 40])),
    "rule 6 unlabelled rule": (_rule_layer(text=False), _rule_layer()),
    "rule 6 empty label": (_rule_layer(label=""), _rule_layer(label="64 KB")),
    "rule 7 log labels collide": (_log_x([1, 10, 100, 1e3, 1e4, 1e5, 1e6], width=120, format=","),  # "10,000" at 20 px
                                  _log_x([1, 1e3, 1e6], width=120, labelExpr=charts.LABEL_SI)),
    "rule 7 categories collide": (
        {"data": {"values": [{"k": f"category {i}", "v": i} for i in range(8)]}, "mark": "bar", "width": 160,
         "encoding": {"x": {"field": "k", "type": "nominal", "axis": {"labelAngle": 0}},
                      "y": {"field": "v", "type": "quantitative"}}},
        {"data": {"values": [{"k": f"category {i}", "v": i} for i in range(8)]}, "mark": "bar", "width": 160,
         "encoding": {"x": {"field": "k", "type": "nominal"}, "y": {"field": "v", "type": "quantitative"}}}),
    "rule 8 title wider than chart": (_unit(title="a title of fifty-odd characters, too wide", width=150),
                                      _unit(title=["a title of fifty-odd", "characters, wrapped"], width=150)),
    "rule 8 legend label cut": (
        _unit(data={"values": [{"a": 1, "b": 2, "c": _LONG}]}, encoding=_enc(color={"field": "c", "type": "nominal"})),
        _unit(data={"values": [{"a": 1, "b": 2, "c": _LONG}]},
              encoding=_enc(color={"field": "c", "type": "nominal", "legend": {"labelLimit": 320}}))),
    "rule 8 text clipped": (
        {"layer": [_unit(), {"mark": {"type": "text", "clip": True}, "encoding": _enc(text={"field": "c"})}]},
        {"layer": [_unit(), {"mark": {"type": "text", "clip": False}, "encoding": _enc(text={"field": "c"})}]}),
}


@pytest.mark.parametrize("case", sorted(RULE_CASES))
def test_lint_fails_a_chart_that_breaks_a_rule_and_passes_one_that_keeps_it(case):
    bad, good = RULE_CASES[case]
    rule = " ".join(case.split()[:2])
    problems = charts.lint(bad)
    assert problems and all(p.startswith(rule + " ") for p in problems), problems
    assert charts.lint(good) == [], charts.lint(good)
    assert charts.lint(_unit()) == []


def test_the_label_estimate_matches_what_vega_draws():
    """tick_label reproduces the labels of the rendered SVG (the width estimate rests on it)."""
    for lo, hi, want in [(2e-9, 6e4, {"1e-9", "1e-7", "0.1", "10", "1000"}), (3, 4e6, {"1", "100", "10k", "1M"})]:
        chart = charts.lines([{"x": lo, "y": 1}, {"x": hi, "y": 2}], x="x", y="y", log_x=True)
        axis = chart.to_dict()["encoding"]["x"]["axis"]
        labels = {charts.tick_label(v, axis) for v in axis["values"]}
        assert want <= labels and labels <= set(_svg_texts(chart))


def test_log_ticks_are_thinned_to_fit_a_narrow_axis():
    rows = [{"x": x, "y": 1.0} for x in (1e-9, 1e6)]
    wide = charts.lines(rows, x="x", y="y", log_x=True, width=600).to_dict()["encoding"]["x"]["axis"]["values"]
    narrow = charts.lines(rows, x="x", y="y", log_x=True, width=110).to_dict()
    ticks = narrow["encoding"]["x"]["axis"]["values"]
    assert 2 <= len(ticks) < len(wide) and ticks[0] == wide[0]
    assert charts.lint(narrow) == []
    dense = charts.fit_log_ticks([1, 2, 5, 10, 20, 50, 100], [1, 100], length=60)
    assert dense == [1, 10, 100] or len(dense) < 3          # the 2s and 5s go first


def test_heatmap_ticks_fit_small_images_and_titles_wrap_to_the_width():
    small = charts.heatmap(np.zeros((512, 2000)), x="input", y="output", width=120, height=60, title="W of hidden.0 (512, 2000)")
    spec = small.to_dict()
    assert charts.lint(spec) == []
    assert len(spec["encoding"]["x"]["axis"]["values"]) >= 2
    assert all(len(line) * charts.TITLE_CHAR_PX <= 120 for line in charts._title_lines(spec["title"]))


def test_histogram_rules_are_labelled_by_default():
    spec = charts.histogram(np.linspace(-1, 1, 200), rules=[-0.25, 0.25]).to_dict()
    labels = {r.get("label") for r in _data(spec) if "at" in r}
    assert labels == {"-0.25", "0.25"} and charts.lint(spec) == []


def test_long_legend_and_category_labels_are_kept_whole():
    rows = [{"k": "uniform symmetric, per tensor, 4 bits", "v": 1.0, "x": 1}, {"k": "k-means", "v": 2.0, "x": 2}]
    for chart in (charts.lines(rows, x="x", y="v", color="k"), charts.bars(rows, x="k", y="v")):
        assert charts.lint(chart) == []
        assert charts.svg_problems(_bundle(chart)["image/svg+xml"]) == []


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_builder_draws_a_static_svg_with_nothing_cut(name):
    """The offline SVG holds every title, legend and label whole: none shortened with '…', none reaching
    outside the SVG's viewBox or outside the clip rectangle of its group."""
    svg = _bundle(BUILDERS[name]())["image/svg+xml"]
    assert charts.svg_problems(svg) == []


def test_svg_check_finds_cut_text():
    rows = [{"x": i, "y": i, "k": _LONG + " and longer still"} for i in range(3)]
    legend_cut = alt.Chart(alt.Data(values=rows)).mark_point().encode(x="x:Q", y="y:Q", color="k:N")
    assert any("'…'" in p for p in charts.svg_problems(_bundle(legend_cut)["image/svg+xml"]))
    edge = [{"x": 10, "y": 1, "t": "a label that runs far past the right edge"}, {"x": 0, "y": 0, "t": "x"}]
    clipped = alt.Chart(alt.Data(values=edge)).mark_text(clip=True, align="left").encode(
        x="x:Q", y="y:Q", text="t:N").properties(width=200)
    assert any("reaches outside" in p for p in charts.svg_problems(_bundle(clipped)["image/svg+xml"]))
    title = charts.lines([{"x": 1, "y": 2}, {"x": 2, "y": 3}], x="x", y="y", width=150,
                         title="a title that is long enough to need wrapping at this width")
    svg = _bundle(title)["image/svg+xml"]
    assert charts.svg_problems(svg) == [] and "<tspan" in svg     # wrapped lines, all inside


def test_lint_walks_nested_specs_and_named_datasets():
    bad = {"datasets": {"d1": [{"c": f"c{i}"} for i in range(11)]},
           "vconcat": [{"hconcat": [_unit(), {"layer": [
               {"data": {"name": "d1"}, "mark": "bar", "encoding": {"color": {"field": "c", "type": "nominal"}}}]}]},
                       {"facet": {"field": "c", "type": "nominal"}, "data": {"values": []},
                        "spec": {"mark": "line", "encoding": {"y": {"field": "b", "type": "quantitative",
                                                                   "scale": {"type": "symlog"}}}}}]}
    probs = charts.lint(bad)
    assert [p[:6] for p in probs] == ["rule 1", "rule 2"]
    assert "vconcat[0].hconcat[1].layer[0]" in probs[0] and "vconcat[1].spec" in probs[1]
    inherited = {"data": {"values": [{"c": f"c{i}"} for i in range(11)]},
                 "layer": [{"mark": "point", "encoding": {"color": {"field": "c", "type": "nominal"}}}]}
    assert len(charts.lint(inherited)) == 1
    old = charts.lines([{"x": 1, "y": 1}], x="x", y="y") .encode(y=alt.Y("y:Q", scale=alt.Scale(type="symlog")))
    assert any(p.startswith("rule 2") for p in charts.lint(old))   # an altair chart works too


def test_one_width_rule_for_builders_and_lint():
    """The width titles are wrapped to and the width rule 8 checks them against come from one function, for
    altair charts and spec dicts alike."""
    a = charts.lines([{"x": 1, "y": 2}], x="x", y="y", width=100)
    b = charts.lines([{"x": 1, "y": 2}], x="x", y="y", width=150)
    g = charts.grid([a, b, a], columns=2)
    assert charts._width_of(g) == charts._width_of(g.to_dict()) == 100 + 16 + 150
    sm = BUILDERS["small_multiples"]()
    assert charts._width_of(sm) == charts._width_of(sm.to_dict()) == 200 * 2 + 20
    assert charts._width_of({"concat": [{"width": 50}, {"width": 90}, {"width": 70}], "columns": 2}) == 70 + 20 + 90
    assert charts._width_of({"layer": [{"width": 50}, {"width": 90}]}) == 90
    assert charts._width_of({"mark": "point"}, 120) == 120 and charts._width_of({"mark": "point"}) is None


def test_one_label_collision_estimate_for_ticks_and_lint():
    assert charts._labels_collide(10, "10", "100", channel="x")           # 2.5 chars each side: 15 + 2 px
    assert not charts._labels_collide(17, "10", "100", channel="x")
    assert charts._labels_collide(10.9, "1", "1", channel="y") and not charts._labels_collide(11, "1", "1", channel="y")
    assert not charts._labels_collide(12, "1000", "1000", channel="x", angle=90)   # rotated: the label's height
    narrow = charts.lines([{"x": 1e-9, "y": 1.0}, {"x": 1e6, "y": 1.0}], x="x", y="y", log_x=True, width=110)
    axis = narrow.to_dict()["encoding"]["x"]["axis"]
    ticks, dom = axis["values"], narrow.to_dict()["encoding"]["x"]["scale"]["domain"]
    assert charts._ticks_fit(ticks, dom, length=110, channel="x", expr=axis["labelExpr"]) and charts.lint(narrow) == []
