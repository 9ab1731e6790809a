"""Network-level size targeting: hit a total size_fraction for a whole model with DeepThin layers.

Taught in: 03_deepthin
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from thinlab._validate import ceil_sig, check_count, check_fraction, check_layout
from thinlab.deepthin.solver import ORIGINAL_DTYPE, DeepThinSize, deepthin_lower_bound, deepthin_size
from thinlab.size import LayerSize, SizeReport, dense_bytes, share_budget

#: The rank :func:`plan_network` (and so ``compress(method="deepthin")``) gives every layer when
#: ``rank`` is not passed: the paper's r = 1 (Sotoudeh & Baghsorkhi, section 5.3.1: r = 1 trained as
#: well as or better than larger ranks, and every DeepThin model there uses it). The rule: it moves
#: to the largest rank that fits only if that trains better beyond noise on both data sets. Measured
#: with ``python -m thinlab.experiments.deepthin_rank --data synthetic`` and ``--data
#: ../shared/speech_commands_sample`` (lesson 03's DNN and recipe, 20 epochs, sizes 1/20, 1/100,
#: 1/200, 1/350, seeds 0-2; accuracy on validation + test speakers), largest rank − r = 1 pooled
#: over the sizes where the plans differ: +0.026 ± 0.032 (synthetic) and +0.005 ± 0.027 (real
#: sample), both within noise (2 standard errors). Per size the larger rank led at 1/20 (+0.052
#: synthetic, within noise; +0.035 real, beyond its 0.028 noise) and trailed at 1/200 on the real
#: sample (−0.049, beyond 0.041): no consistent winner, so the paper's choice stays. r = 1 is also
#: the cheapest fused product (one inverse FFT per rank, :mod:`thinlab.deepthin.fused`).
DEFAULT_RANK: int | str = 1
_default_rank: list = [DEFAULT_RANK]      # the current default; :func:`rank_default` swaps it for a block


def _check_rank(rank) -> int | None:
    """``rank`` as an int cap, or None for "the largest that fits" (``"max"``)."""
    if rank is None:
        rank = _default_rank[0]
    if rank == "max":
        return None
    if isinstance(rank, str):
        raise ValueError(f"rank={rank!r} is not a rank; pass an int ≥ 1 (a cap on every layer's rank), "
                         f"'max' (the largest that fits each layer) or None (the default, {DEFAULT_RANK!r})")
    return check_count("rank", rank)


@contextmanager
def rank_default(rank):
    """Within the block, :func:`plan_network`'s default rank is ``rank`` (an int cap or ``"max"``);
    ``None`` changes nothing.

    ``compress(method="deepthin")`` plans through :func:`plan_network` and takes no DeepThin rank
    itself, so this is how :func:`thinlab.experiments.compare.train_compressed` trains the
    largest-rank variant for lesson 03's rank comparison.

    Taught in: 03_deepthin
    """
    if rank is None:
        yield
        return
    _check_rank(rank)
    old = _default_rank[0]
    _default_rank[0] = rank
    try:
        yield
    finally:
        _default_rank[0] = old


@dataclass(frozen=True)
class NetworkPlan:
    """DeepThin layouts for every compressed layer plus the bytes kept uncompressed.

    ``size_fraction`` is the achieved total: (compressed bytes + other bytes) / (dense bytes of
    the compressed layers + other bytes); ``target`` is what was asked.

    Taught in: 03_deepthin
    """

    layers: dict
    other_bytes: int
    target: float

    @property
    def total_bytes(self) -> int:
        """Bytes of every compressed layer plus the uncompressed params.

        Taught in: 03_deepthin
        """
        return sum(s.bytes for s in self.layers.values()) + self.other_bytes

    @property
    def dense_bytes(self) -> int:
        """Bytes of the same model stored dense in float32.

        Taught in: 03_deepthin
        """
        return sum(s.dense_bytes for s in self.layers.values()) + self.other_bytes

    @property
    def size_fraction(self) -> float:
        """Achieved total size_fraction (compressed / dense bytes).

        Taught in: 03_deepthin
        """
        return self.total_bytes / self.dense_bytes

    @property
    def n_params(self) -> int:
        """Parameters of the compressed layers (X^f and W^f of each).

        Taught in: 03_deepthin
        """
        return sum(s.n_params for s in self.layers.values())

    def report(self) -> SizeReport:
        """Per-layer :class:`thinlab.size.SizeReport` (plus an "other" row if any).

        Taught in: 03_deepthin
        """
        rows = [LayerSize(name, "deepthin", s.n_params, s.bytes, s.dense_bytes,
                          {"m": s.m, "n": s.n, "r": s.r, "gcd": s.gcd}) for name, s in self.layers.items()]
        if self.other_bytes:
            rows.append(LayerSize("other", "dense", self.other_bytes // 4, self.other_bytes, self.other_bytes))
        return SizeReport(rows)


def plan_network(shapes: dict, *, size_fraction: float, other_params: int = 0, rank: int | str | None = None,
                 layout: str = "coprime", dtype="float32", shuffled: bool = False) -> NetworkPlan:
    """Choose a DeepThin layout for every layer so the whole model lands on ``size_fraction``.

    The budget is ``size_fraction · (dense bytes of all layers + other bytes)`` minus the other
    bytes (biases, layers left dense: counted as float32). It is shared as one common fraction
    over the compressed layers; a layer whose DeepThin lower bound is above that fraction is
    pinned at its bound (with ``layout="coprime"``, the coprime floor whenever the budget
    allows it, so a square layer is never pinned at plain rank 1) and its overhead is taken from the others (repeated until no layer is
    below its bound). A last pass hands the rounding slack of each layer (ranks are integers)
    to the layers after it, largest first, so the total lands just under the target.

    Parameters
    ----------
    shapes : dict[str, (Q, R)]
        Layers to compress, W of shape (Q, R) each.
    size_fraction : float
        Target total compressed / dense bytes, in (0, 1].
    other_params : int
        Parameters kept uncompressed (float32).
    rank : int, "max" or None
        Cap every layer's rank at this value; ``"max"``: each layer takes the largest rank that
        fits; None: :data:`DEFAULT_RANK` (the paper's r = 1; see there for why).
    layout, dtype, shuffled
        Passed to :func:`deepthin_size`.

    Returns
    -------
    NetworkPlan

    Taught in: 03_deepthin
    """
    alpha, layout, rank = check_fraction(size_fraction), check_layout(layout), _check_rank(rank)
    if not shapes:
        raise ValueError("shapes is empty; pass {'layer name': (Q, R), ...} for the layers to compress")
    shapes = {name: (check_count(f"{name} Q", q), check_count(f"{name} R", r)) for name, (q, r) in shapes.items()}
    other = 4 * check_count("other_params", other_params, minimum=0)
    dense = {k: dense_bytes(s, dtype=ORIGINAL_DTYPE) for k, s in shapes.items()}
    total = sum(dense.values()) + other
    budget = alpha * total - other
    lower = {k: deepthin_lower_bound(*s, dtype=dtype, shuffled=shuffled) for k, s in shapes.items()}
    if layout == "coprime":     # pin at the coprime floor where the budget allows it (see deepthin_lower_bound)
        coprime = {k: deepthin_lower_bound(*s, dtype=dtype, shuffled=shuffled, layout="coprime")
                   for k, s in shapes.items()}
        if sum(coprime[k] * dense[k] for k in shapes) <= budget:
            lower = coprime
    too_small = {k: f"{v:.3g}" for k, v in lower.items() if v > 1}
    if too_small:
        raise ValueError(f"layers {sorted(too_small)} are too small for DeepThin: even rank 1 with the two shapes "
                         f"recorded is larger than the dense layer (lower bounds {too_small}, above 1); leave them "
                         f"dense and add their parameters to other_params")
    floor_bytes = sum(lower[k] * dense[k] for k in shapes)
    if budget < floor_bytes:
        least = ceil_sig((floor_bytes + other) / total)
        raise ValueError(f"size_fraction={alpha:.3g} is below what this network can reach: every layer at its "
                         f"DeepThin lower bound plus {other:,} bytes of uncompressed params gives {least:.3g}; "
                         f"use size_fraction ≥ {least:.3g}, or compress part of the other params too")
    common, pinned = share_budget(dense, {k: lower[k] * dense[k] for k in shapes}, budget)
    free = [k for k in shapes if k not in pinned]

    def solve(name: str, fraction: float) -> DeepThinSize:
        fraction = min(1.0, max(fraction, lower[name]))
        kw = dict(size_fraction=fraction, layout=layout, dtype=dtype, shuffled=shuffled)
        if rank is not None:
            kw["rank"] = min(rank, deepthin_size(*shapes[name], **kw).r)
        return deepthin_size(*shapes[name], **kw)

    layers = {k: solve(k, lower[k] if k in pinned else common) for k in shapes}
    slack = budget - sum(s.bytes for s in layers.values())
    for k in sorted(free, key=dense.get, reverse=True):           # hand the rounding slack on
        better = solve(k, (layers[k].bytes + slack) / dense[k])
        slack -= better.bytes - layers[k].bytes
        layers[k] = better
    return NetworkPlan(layers=layers, other_bytes=other, target=alpha)
