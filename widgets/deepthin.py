"""DeepThin ratio explorer: a compression-factor slider over the DeepThin size solver.

Per move (factor = 1 / size_fraction, log-spaced 2x … 1000x, only those the layer can reach):
the solver's W_aux shape (m, n), rank r, gcd(n, Q) and its alignment period (the LCM rule),
the honest bytes and factor, the column offsets inside a W_aux row, and the reconstructed weight
image beside the original:

* with a trained ``W``: W projected onto the DeepThin structure: ``unrelayout`` W into W_aux
  (m, n) (the m·n − Q·R unused entries held at 0), keep its best rank-r part (truncated SVD,
  via the eigenvectors of the n x n Gram matrix), and ``reconstruct``. A good fit, not the
  trained optimum; the relative error is printed;
* with only a shape: a random layer from the paper's initialisation (``init_factors``, Glorot σ).

Where it opens: a projection is not a trained DeepThin layer, and at high factors (50x on the
lessons' DNN) the projected layer has lost so much that the model predicts one class: the accuracy
is exactly chance. So with a trained ``W`` and an ``evaluate`` (and no ``factor``), the explorer
opens at a factor it computed by lesson 03's rule,
:func:`thinlab.deepthin.opening_factor` (the same one ``explorer_start`` applies to
the lesson's projection rows): the largest factor whose projected layer keeps at least ``keep`` (half)
of the dense accuracy above ``chance``, scanning down from the largest factor. ``explorer.opening``
says which and why; without ``evaluate`` it opens nearest 10x.

Each (factor, layout) is solved once and memoised (the factors X^f, W^f and the image are kept;
the full weight is rebuilt only for ``evaluate``).

Taught in: 03_deepthin
"""
from __future__ import annotations

import math
import numbers

import ipywidgets as widgets
import numpy as np

from thinlab.deepthin import (deepthin_lower_bound, deepthin_size, glorot_std, init_factors, opening_factor, reconstruct,
                              unrelayout)
from thinlab.size import format_factor

from . import plots
from .base import Explorer, Frame, check_evaluate, check_score, check_weight, fmt_bytes, one_blas_thread

#: the slider's factors (1 / size_fraction), log-spaced; those below a layer's lower bound are dropped
DEFAULT_FACTORS = (2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000)
LAYOUTS = ("coprime", "aligned", "any")
#: columns whose start offsets are plotted
OFFSET_COLUMNS = 128


def _shape_or_weight(W_or_shape):
    """``(W or None, Q, R)`` from a weight array or a (Q, R) shape."""
    if isinstance(W_or_shape, tuple) and len(W_or_shape) == 2 and all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in W_or_shape):
        Q, R = (int(d) for d in W_or_shape)
        if Q < 1 or R < 1:
            raise ValueError(f"shape {W_or_shape} must be two positive ints (Q, R) = (in, out)")
        return None, Q, R
    W = check_weight(W_or_shape, name="W_or_shape")
    return W, W.shape[0], W.shape[1]


def _factors(factors, max_factor: float, shape) -> list[float]:
    try:
        values = [float(f) for f in factors]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"factors={factors!r} must be numbers > 1, e.g. (10, 20, 50, 100)") from exc
    if not values or any(not math.isfinite(f) or f <= 1 for f in values):
        raise ValueError(f"factors={factors!r} must be a non-empty list of numbers > 1, e.g. (10, 20, 50, 100)")
    fit = sorted({f for f in values if f <= max_factor * (1 + 1e-9)})
    if not fit:
        raise ValueError(f"no factor in {tuple(values)} fits W of shape {shape}: DeepThin compresses this layer "
                         f"at most {max_factor:.3g}x (its lower bound size_fraction is {1 / max_factor:.3g}); "
                         f"pass factors ≤ {max_factor:.3g} or compress a larger layer")
    return fit


def _label(f: float) -> str:
    return f"{f:g}x"


def _top_eigenvectors(G: np.ndarray, r: int) -> np.ndarray:
    """The eigenvectors of the r largest eigenvalues of the symmetric ``G`` (k, k), largest first: (k, r).

    SciPy (installed with librosa) can compute only those r, 1.5-3x faster than all of them.
    """
    k = G.shape[0]
    try:
        from scipy.linalg import eigh
    except ImportError:  # numpy alone: all eigenpairs
        return np.linalg.eigh(G)[1][:, ::-1][:, :r]
    return eigh(G, subset_by_index=[k - r, k - 1], driver="evr")[1][:, ::-1]


def best_rank_factors(W_aux: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Best rank-r factors ``X^f (m, r)``, ``W^f (r, n)`` of ``W_aux`` (m, n) in the Frobenius norm.

    The top-r eigenvectors V of the Gram matrix of the shorter side span the top singular
    subspace; ``X^f = W_aux·V`` and ``W^f = Vᵀ`` (for n ≤ m), so ``X^f·W^f = W_aux·V·Vᵀ`` is
    the truncated SVD. About 3x cheaper than a full SVD, which matters on every new slider value.
    """
    A = np.asarray(W_aux, dtype=np.float64)
    if A.shape[1] <= A.shape[0]:
        V = _top_eigenvectors(A.T @ A, r)  # (n, r)
        return (A @ V).astype(np.float32), np.ascontiguousarray(V.T, dtype=np.float32)
    U = _top_eigenvectors(A @ A.T, r)  # (m, r)
    return np.ascontiguousarray(U, dtype=np.float32), (U.T @ A).astype(np.float32)


class DeepThinExplorer(Explorer):
    """See :func:`deepthin_explorer`."""

    name = "DeepThin explorer"

    def __init__(self, W_or_shape, *, evaluate=None, factor: float | None = None, factors=DEFAULT_FACTORS,
                 layout: str = "coprime", seed: int = 0, dtype="float32", baseline: float | None = None,
                 keep: float | None = None, chance: float = 0.0):
        self.W, self.Q, self.R = _shape_or_weight(W_or_shape)
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r}; choose one of {LAYOUTS}")
        self.dtype, self.seed = dtype, seed
        self.lower_bound = deepthin_lower_bound(self.Q, self.R, dtype=dtype)
        self.factors = _factors(factors, 1.0 / self.lower_bound, (self.Q, self.R))
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, numbers.Real) or not 0 < keep <= 1):
            raise ValueError(f"keep={keep!r} must be a share in (0, 1], e.g. 0.5 (half the dense accuracy "
                             "above chance)")
        if isinstance(chance, bool) or not isinstance(chance, numbers.Real) or not 0 <= chance < 1:
            raise ValueError(f"chance={chance!r} must be the accuracy of a guess in [0, 1), e.g. 1 / len(labels)")
        if factor is not None and factor not in self.factors:
            raise ValueError(f"factor={factor!r} is not one of the slider's factors {self.factors}; "
                             "pick one of them or pass factors=[...] including it")
        self._solved: dict = {}
        self._layout_name = layout  # the toggle does not exist yet: solve() reads this until it does
        if self.W is not None:
            corner = plots.crop(self.W)
            self._corner_rows, self._norm = plots.matrix_rows(corner), float(np.linalg.norm(self.W))
            a = plots.weight_range(corner)
        else:
            corner = np.empty((min(self.Q, plots.IMAGE_SIDE), min(self.R, plots.IMAGE_SIDE)))
            a = 3 * glorot_std(self.Q, self.R)
        self.opening, scores = self._opening(factor, check_evaluate(evaluate), baseline, keep, float(chance), layout)
        slider = widgets.SelectionSlider(options=[(_label(f), f) for f in self.factors], value=self.opening["factor"],
                                         description="compression", layout=widgets.Layout(width="420px"))
        self.layout = widgets.ToggleButtons(options=list(LAYOUTS), value=layout, description="n rule",
                                            tooltips=["prefer gcd(n, Q) = 1 (the paper's LCM rule)",
                                                      "prefer n dividing Q (block-wise low rank)", "no preference"],
                                            style={"button_width": "70px"})
        panels = [plots.image("approx", shape=corner.shape, domain=[-a, a],
                              title=["DeepThin W", "(top-left corner)"] if self.W is not None
                              else ["random DeepThin W", "(paper init, corner)"])]
        if self.W is not None:
            panels.insert(0, plots.image("original", shape=corner.shape, domain=[-a, a], title="W (top-left corner)",
                                         legend=False))
        panels.append(plots.scatter("offsets", x="column", y="offset", x_title="column j of W",
                                    y_title="(j·Q) mod n", title=["where column j starts", "in a W_aux row"]))
        super().__init__(slider=slider, template=plots.row_of(*panels), controls=[self.layout],
                         evaluate=evaluate, baseline=baseline, scores=scores)

    def _opening(self, factor, evaluate, baseline, keep, chance: float, layout: str) -> tuple[dict, dict]:
        """Where the slider starts, and why: ``({"factor", "why", ...}, accuracies evaluated on the way)``.

        With ``evaluate`` (and a trained W) the rule is lesson 03's
        :func:`thinlab.deepthin.opening_factor`, the one ``explorer_start`` uses.
        """
        if factor is not None:
            return {"factor": float(factor), "why": "as asked"}, {}
        nearest_10 = min(self.factors, key=lambda f: abs(math.log(f / 10)))
        if evaluate is None or self.W is None:
            return {"factor": nearest_10, "why": "nearest 10x (no evaluate to choose by)"}, {}

        dense = float(baseline) if baseline is not None else check_score(evaluate(self.W))
        scores: dict = {}

        def score(f: float) -> float:
            key = (float(f), layout)
            if key not in scores:
                scores[key] = check_score(evaluate(self.reconstruct(f, layout)))
            return scores[key]

        kw = {} if keep is None else {"keep": float(keep)}
        o = opening_factor(self.factors, score, baseline=dense, chance=chance, **kw)
        return dict(o, factor=float(o["factor"])), scores

    def solve(self, factor: float, layout: str | None = None) -> dict:
        """The memoised solution at ``factor``: ``size`` (DeepThinSize), ``Xf``, ``Wf``, ``error``, image rows."""
        if layout is None:
            layout = self.layout.value if hasattr(self, "layout") else self._layout_name
        key = (float(factor), layout)
        if key not in self._solved:
            size = deepthin_size(self.Q, self.R, size_fraction=1.0 / float(factor), layout=layout, dtype=self.dtype)
            if self.W is not None:
                W_aux = unrelayout(self.W, m=size.m, n=size.n)  # (m, n), unused entries 0
                with one_blas_thread():
                    Xf, Wf = best_rank_factors(W_aux, size.r)
            else:
                Xf, Wf = init_factors(size.m, size.n, size.r, target_std=glorot_std(self.Q, self.R), rng=self.seed)
            W_hat = reconstruct(Xf, Wf, Q=self.Q, R=self.R)  # (Q, R) float32
            error = None
            if self.W is not None:  # relative Frobenius error of the projection
                error = float(np.linalg.norm(self.W - W_hat)) / self._norm if self._norm else 0.0
            self._solved[key] = {"size": size, "Xf": Xf, "Wf": Wf, "error": error,
                                 "rows": plots.matrix_rows(plots.crop(W_hat))}
        return self._solved[key]

    def reconstruct(self, factor: float, layout: str | None = None) -> np.ndarray:
        """The DeepThin weight (Q, R) float32 at ``factor`` (see :meth:`solve`)."""
        sol = self.solve(factor, layout)
        return reconstruct(sol["Xf"], sol["Wf"], Q=self.Q, R=self.R)

    def compute(self, value) -> Frame:
        if value not in self.factors:
            raise ValueError(f"factor={value!r} is not one of the slider's factors {self.factors}")
        layout = self.layout.value
        sol = self.solve(value, layout)
        sz, Q, R = sol["size"], self.Q, self.R
        period = sz.period
        state = {"target_factor": float(value), "layout": layout, "Q": Q, "R": R, "m": sz.m, "n": sz.n, "r": sz.r,
                 "gcd": sz.gcd, "period": period, "waste": sz.waste, "n_params": sz.n_params, "bytes": sz.bytes,
                 "dense_bytes": sz.dense_bytes, "size_fraction": sz.size_fraction,
                 "factor": format_factor(sz.size_fraction), "lower_bound": self.lower_bound}
        if sol["error"] is not None:
            state["relative_error"] = sol["error"]
        rule = (f"gcd({sz.n}, {Q}) = 1: the LCM rule holds, column offsets repeat only every n = {sz.n} columns"
                if sz.gcd == 1 else
                f"gcd({sz.n}, {Q}) = {sz.gcd}: columns fall into n/gcd = {period} alignment classes"
                + (" (n divides Q: block-wise low rank)" if period == 1 else ""))
        rows = [("target", f"{_label(value)}  (size_fraction ≤ {1 / value:.4g}; this layer's limit "
                           f"{format_factor(self.lower_bound)})"),
                ("solver", f"W_aux ({sz.m}, {sz.n}) = X^f ({sz.m}, {sz.r}) · W^f ({sz.r}, {sz.n}),  "
                           f"m·n = {sz.m * sz.n:,} ≥ Q·R = {Q * R:,}  (unused {sz.waste:,})"),
                ("n rule", rule),
                ("bytes", f"{fmt_bytes(sz.bytes)} vs dense {fmt_bytes(sz.dense_bytes)}  → {state['factor']}  "
                          f"({sz.n_params:,} values)")]
        if "bar" in self.opening:      # computed by the lesson's rule: its sentence names the factor
            rows.append(("opened at", self.opening["why"]))
        elif self.opening["why"] != "as asked":
            rows.append(("opened at", f"{_label(self.opening['factor'])}: {self.opening['why']}"))
        if sol["error"] is not None:
            rows.append(("error", f"‖W − W_DeepThin‖ / ‖W‖ = {sol['error']:.4f}  "
                                  "(projection, before any training)"))
        else:
            rows.append(("init", f"X^f ~ N(0, σ²), W^f ~ N(0, 1/r), σ = Glorot {glorot_std(Q, R):.4g}"))
        cols = np.arange(min(R, OFFSET_COLUMNS))
        offsets = [{"column": j, "offset": o} for j, o in zip(cols.tolist(), (cols * Q % sz.n).tolist())]
        datasets = {"approx": sol["rows"], "offsets": offsets}
        if self.W is not None:
            datasets["original"] = self._corner_rows
        err = f", error {sol['error']:.3f}" if sol["error"] is not None else ""
        return Frame(key=(float(value), layout), state=state, rows=rows, datasets=datasets,
                     title=f"{state['factor']}: m={sz.m}, n={sz.n}, r={sz.r}, gcd(n, Q)={sz.gcd}{err}",
                     weight=lambda: self.reconstruct(value, layout))


def deepthin_explorer(W_or_shape, *, evaluate=None, factor: float | None = None, factors=DEFAULT_FACTORS,
                      layout: str = "coprime", seed: int = 0, dtype="float32",
                      baseline: float | None = None, keep: float | None = None,
                      chance: float = 0.0) -> DeepThinExplorer:
    """Slide DeepThin's compression factor and watch the solver's (m, n, r), the LCM rule and the weights.

    Parameters
    ----------
    W_or_shape : ndarray (Q, R) of float (a trained layer, projected onto DeepThin), or a shape
        tuple (Q, R) (a random layer from the paper's initialisation)
    evaluate : callable (Q, R) ndarray → float, optional
        Accuracy with this layer's weight replaced by the DeepThin one; memoised per value.
    factor : the starting factor, one of ``factors``. Default: with a trained ``W`` and ``evaluate``, the
        factor lesson 03's rule computes (:func:`thinlab.deepthin.opening_factor`, as
        ``explorer_start``: the largest factor whose projected layer keeps ``keep`` of the dense accuracy
        above ``chance``; ``.opening`` says which and why), else the one nearest 10x
    factors : compression factors 1 / size_fraction offered (those beyond the layer's DeepThin
        lower bound are dropped)
    layout : ``"coprime"`` (the paper's LCM rule), ``"aligned"`` or ``"any"``: the solver's
        preference for n, also a toggle in the widget
    seed : seed of the random initialisation (shape only)
    dtype : storage dtype of the factors
    baseline : float, optional, the dense model's accuracy (also the reference of ``keep``; default:
        ``evaluate(W)``)
    keep : share of the dense accuracy above chance the opening factor must keep (default
        ``thinlab.deepthin.OPENING_KEEP``, 0.5)
    chance : the accuracy of a guess, e.g. ``1 / len(labels)`` (default 0: with no chance given, the bar is
        ``keep`` of the dense accuracy itself). Pass the task's chance to open where the lesson does.

    Returns
    -------
    DeepThinExplorer with ``.widget``, ``.slider``, ``.layout`` (toggle), ``.update(factor)``,
    ``.readout``, ``.chart``, ``.spec``, ``.solve(factor)``, ``.reconstruct(factor)`` and ``.state``
    (``m``, ``n``, ``r``, ``gcd``, ``period``, ``bytes``, ``size_fraction``, ``factor``,
    ``relative_error`` with a W, ``accuracy`` if evaluated) and ``.opening`` (``factor``, ``why``; when
    computed also ``accuracy``, ``dense``, ``chance``, ``keep``, ``bar``).

    Taught in: 03_deepthin
    """
    return DeepThinExplorer(W_or_shape, evaluate=evaluate, factor=factor, factors=factors, layout=layout,
                            seed=seed, dtype=dtype, baseline=baseline, keep=keep, chance=chance)
