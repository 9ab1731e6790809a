"""Shared plumbing of the explorers: a slider (and other controls) → compute → readout + chart.

An :class:`Explorer` owns

* ``slider`` (``continuous_update=False``, observed on ``"value"``) and optional extra ``controls``;
* ``readout``: an ``ipywidgets.HTML`` table of the printed figures;
* ``output``: an ``ipywidgets.Output`` the chart is redrawn into (its ``outputs`` replaced by
  the chart's offline bundle, see :meth:`Explorer._draw`), so no JavaScript beyond JupyterLab's
  own Vega renderer is needed (altair's ``JupyterChart`` loads vega from a CDN: blank offline);
* ``state`` (the last computed numbers), ``spec`` (the last Vega-Lite dict drawn) and ``chart``
  (the same as an altair chart, built on first access);
* ``update(value)``: compute and redraw for one slider value (tests call it directly).

Saved notebooks: the widget's state is not what a reader sees later (an untrusted notebook skips
widget outputs, and nothing moves the slider of a trusted one), so an explorer displays with a
short ``text/plain`` note ("… run the notebook to move the slider") instead of the raw
``VBox(children=(HBox(…`` repr, and in a headless run (:func:`thinlab._progress.headless`: papermill,
the grader, CI) also with ``text/html``: a static PNG of its chart as drawn (rendered offline by
vl-convert, as :mod:`thinlab.charts` does), its readout and that note. JupyterLab shows the
``text/html`` wherever it cannot show the live widget. Headless, the widget itself carries the note too.

Size: the charts fit a 900-px notebook column (:data:`MAX_WIDTH` px including legends; tested).

Speed: the chart's structure is an altair chart over *named* datasets, validated once; a slider
move only fills in the rows (see :mod:`thinlab.widgets.plots`). Subclasses precompute their heavy
work (SVD, sort order, ...) in ``__init__`` and memoise per value, and the optional ``evaluate``
(compressed weight → accuracy) is memoised per value too.

Taught in: 01_pruning (first explorer), used by 02-06
"""
from __future__ import annotations

import base64
import html
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Hashable

import altair as alt
import ipywidgets as widgets
import numpy as np

from thinlab import _progress, charts
from thinlab._threads import limited_threads
from thinlab._validate import as_weight

_W_HINT = "(Q, R) = (in, out); pass one layer's weight, e.g. model.fc1.weight.detach().numpy().T"
#: how JupyterLab's Vega renderer draws our charts: SVG (readable DOM, crisp), no action menu
EMBED_OPTIONS = {"renderer": "svg", "actions": False}
VL5 = "application/vnd.vegalite.v5+json"
#: what a saved explorer says to its reader
NOTE = "run the notebook to move the slider"
#: widest chart (px, legends included) that fits a 900-px notebook column beside the output prompt
MAX_WIDTH = 820


def one_blas_thread():
    """Context: one BLAS thread for the mid-sized LAPACK calls (SVD, eigh) of the explorers.

    OpenBLAS threads spin while they wait, so when another process holds a core (Binder, shared
    machines) a threaded eigh of a ~1000 x 1000 matrix ran 2-30x slower here than on one thread;
    on an idle machine one thread costs little at these sizes. No-op without threadpoolctl.
    """
    return limited_threads(1, blas_only=True)


def check_weight(W, *, name: str = "W") -> np.ndarray:
    """``W`` as a finite 2-D float array (no copy), or a ``TypeError`` / ``ValueError`` that says the fix."""
    return as_weight(W, name=name, ndim=2, hint=_W_HINT)


def check_evaluate(evaluate) -> Callable[[np.ndarray], float] | None:
    """``None`` or a callable compressed weight → accuracy."""
    if evaluate is not None and not callable(evaluate):
        raise TypeError(f"evaluate must be None or a callable W → accuracy, got {type(evaluate).__name__}; "
                        "pass e.g. lambda W: accuracy_with(model, 'fc1', W, val_set)")
    return evaluate


def check_score(score) -> float:
    """One finite number from ``evaluate``, or a ``TypeError`` that says what to return."""
    if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score):
        raise TypeError(f"evaluate returned {score!r}; expected one finite number per weight, "
                        "e.g. return float(accuracy)")
    return float(score)


def fmt_bytes(n: int) -> str:
    """``1,048,576 B (1.0 MiB)``."""
    n = int(n)
    if n < 1024:
        return f"{n:,} B"
    unit = "KiB" if n < 1024 ** 2 else "MiB"
    return f"{n:,} B ({n / (1024 if unit == 'KiB' else 1024 ** 2):.3g} {unit})"


def fmt_score(score: float) -> str:
    """Accuracy as a percentage when it is a fraction in [0, 1], else as given."""
    return f"{score:.1%}" if 0.0 <= score <= 1.0 else f"{score:.4g}"


def html_table(rows: list[tuple[str, str]]) -> str:
    """A two-column (label, value) HTML table; every piece is escaped."""
    cells = "".join(f"<tr><td style='padding:1px 12px 1px 0;color:#555'>{html.escape(k)}</td>"
                    f"<td style='padding:1px 0'>{html.escape(v)}</td></tr>" for k, v in rows)
    style = "font-family:monospace;font-size:12px;line-height:1.4"
    return f"<table class='thinlab-readout' style='{style}'>{cells}</table>"


@dataclass
class Frame:
    """What one slider value computes to.

    key : memo key of this value (all controls included), used for ``evaluate``.
    state : the numbers (plain Python scalars / strings), becomes ``Explorer.state``.
    rows : (label, text) lines of the readout.
    datasets : dataset name → list of row dicts, filled into the chart template.
    title : the chart's overall title for this value.
    weight : callable returning the compressed weight (only called when ``evaluate`` is given).
    """

    key: Hashable
    state: dict
    rows: list
    datasets: dict
    title: str = ""
    weight: Callable[[], np.ndarray] | None = None


class ExplorerBox(widgets.VBox):
    """An explorer's top-level widget: displayed (alone or through its explorer), it carries the
    explorer's note instead of the raw ``VBox(children=…)`` text, and a static image when headless."""

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        explorer = getattr(self, "_explorer", None)
        return bundle if explorer is None else explorer._bundle(bundle)


class Explorer:
    """Base class: subclasses build ``slider``, a chart ``template`` and implement :meth:`compute`.

    ``svg=True`` (or setting ``explorer.svg``) also sends the chart's offline SVG copy, for front
    ends without a Vega renderer or static exports; it costs ~0.1-1 s per move, so it is off.
    ``name`` (a class attribute) names it in the saved note. ``scores``: accuracies a subclass already
    evaluated, by frame key (so they are not evaluated again).
    """

    name = "explorer"

    def __init__(self, *, slider: widgets.ValueWidget, template: alt.TopLevelMixin, controls=(),
                 evaluate=None, baseline: float | None = None, svg: bool = False, scores: dict | None = None):
        self.slider = slider
        self.controls = tuple(controls)
        self.readout = widgets.HTML()
        self.output = widgets.Output(layout=widgets.Layout(min_height="120px", max_width="100%", overflow="auto"))
        self.state: dict = {}
        self.spec: dict | None = None
        self.svg = bool(svg)
        self._evaluate = check_evaluate(evaluate)
        if baseline is not None and (isinstance(baseline, bool) or not isinstance(baseline, numbers.Real)):
            raise TypeError(f"baseline={baseline!r} must be a number (the dense model's accuracy) or None")
        self.baseline = None if baseline is None else float(baseline)
        self._scores: dict = dict(scores or {})
        self._template_cls = type(template)
        self._template = template.to_dict()  # validated once; moves only fill in the datasets
        self._chart = None
        self._hold = False
        slider.continuous_update = False
        slider.observe(self._on_change, names="value")
        for control in self.controls:
            control.observe(self._on_control, names="value")
        self.headless = _progress.headless()
        children = [widgets.HBox([slider, *self.controls], layout=widgets.Layout(flex_flow="row wrap")),
                    self.readout, self.output]
        if self.headless:  # a reader of the saved notebook sees this widget's last state, not a live one
            children.append(widgets.HTML(f"<i class='thinlab-note'>Saved from a run without a live front end: "
                                         f"{NOTE}.</i>"))
        self.widget = ExplorerBox(children, layout=widgets.Layout(max_width="100%"))
        self.widget._explorer = self
        self.update(slider.value)

    # ---------------------------------------------------------------- subclass API
    def compute(self, value) -> Frame:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- public
    def update(self, value=None) -> dict:
        """Compute and redraw for slider ``value`` (default: the slider's); returns :attr:`state`.

        Moves the slider too, so the widget always shows what was computed.
        """
        if value is None or value == self.slider.value:
            self._render(self.slider.value)
        else:
            self._hold = True  # set the slider without a second render from its observer
            try:
                self.slider.value = value
            finally:
                self._hold = False
            self._render(self.slider.value)
        return self.state

    @property
    def chart(self) -> alt.TopLevelMixin:
        """The last chart drawn, as an altair chart (built from :attr:`spec` on first access)."""
        if self._chart is None and self.spec is not None:
            structure = {k: v for k, v in self.spec.items() if k != "datasets"}  # small: fast to parse
            self._chart = self._template_cls.from_dict(structure, validate=False)
            self._chart.datasets = self.spec["datasets"]
        return self._chart

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def note(self) -> str:
        """One line for a saved notebook: which explorer, what it showed, how to move it."""
        title = self.spec.get("title") if self.spec else None
        shown = " ".join(title) if isinstance(title, list) else (title or "")
        return f"{self.name}{f' ({shown})' if shown else ''}: {NOTE}"

    def png(self, *, scale: float = 1.0) -> bytes:
        """The chart as drawn now, as PNG bytes (offline, vl-convert, Vega-Lite 5 as :mod:`thinlab.charts`)."""
        import vl_convert

        return vl_convert.vegalite_to_png(charts.to_vl5(self.spec), vl_version=charts.VL5_VERSION, scale=scale)

    def static_html(self) -> str:
        """The explorer's last state as static HTML: its chart as a PNG, its readout and :data:`NOTE`."""
        b64 = base64.b64encode(self.png()).decode("ascii")
        alt_text = html.escape(self.note(), quote=True)
        return (f"<div class='thinlab-static'><img class='thinlab-static-chart' alt='{alt_text}' "
                f"src='data:image/png;base64,{b64}' style='max-width:100%'>{self.readout.value}"
                f"<p class='thinlab-note'><i>Static image of the {html.escape(self.name)} as the notebook ran: "
                f"{NOTE}.</i></p></div>")

    def _bundle(self, bundle: dict) -> dict:
        """The widget's display bundle with the note as its text (and the static image when headless)."""
        bundle = dict(bundle or {})
        bundle["text/plain"] = self.note()
        if self.headless or _progress.headless():
            bundle["text/html"] = self.static_html()
        return bundle

    # ---------------------------------------------------------------- internals
    def _on_change(self, change) -> None:
        if self._hold:
            return
        try:
            self._render(self.slider.value)
        except Exception as exc:  # show it: from the browser, an observer's error only reaches the log
            self.readout.value = (f"<pre style='color:#b00020;white-space:pre-wrap'>"
                                  f"{html.escape(type(exc).__name__ + ': ' + str(exc))}</pre>")
            raise

    def _on_control(self, change) -> None:
        """A secondary control (method, layout) changed: redraw at the slider's value."""
        self._on_change(change)

    def _score(self, frame: Frame) -> float:
        if frame.key not in self._scores:
            self._scores[frame.key] = check_score(self._evaluate(frame.weight()))
        return self._scores[frame.key]

    def _render(self, value) -> None:
        frame = self.compute(value)
        state, rows = dict(frame.state), list(frame.rows)
        if self._evaluate is not None and frame.weight is not None:
            state["accuracy"] = self._score(frame)
            dense = f" (dense {fmt_score(self.baseline)})" if self.baseline is not None else ""
            rows.append(("accuracy", fmt_score(state["accuracy"]) + dense))
        spec = {**self._template, "datasets": frame.datasets}
        if frame.title:
            spec["title"] = charts.wrap_title(frame.title)
        self.state, self.spec, self._chart = state, spec, None
        self.readout.value = html_table(rows)
        self._draw(charts.mimebundle(spec, svg=self.svg))

    def _draw(self, bundle: dict) -> None:
        """Replace the Output's content with the chart (one state update, no flicker).

        Not ``with output: clear_output(wait=True); display(...)``: that capture makes headless
        runners (nbclient / papermill) mirror each output back to the kernel as a comm message,
        and one over 64 KiB (a chart with an image) stalls the run until the cell's timeout.
        """
        self.output.outputs = ({"output_type": "display_data", "data": bundle,
                                "metadata": {VL5: {"embed_options": EMBED_OPTIONS}}},)
