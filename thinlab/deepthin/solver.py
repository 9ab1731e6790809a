"""DeepThin size selection: the auxiliary shape (m, n) and rank r for a byte budget.

A layer Y = X·W with W of shape (Q, R) is stored as two factors X^f (m, r) and W^f (r, n).
Their product W_aux = X^f·W^f (m, n) is read row-major and poured into W column by column,
so the solver must pick m·n ≥ Q·R and keep the factors within the budget: the paper's
inequality (m + n)·r ≤ α·Q·R for each rank r, here in honest bytes (values + the two factor
shapes, + the seed of the shuffled variant) against the float32 dense layer.

Taught in: 03_deepthin
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from thinlab._validate import ceil_sig, check_count, check_fraction, check_layout
from thinlab.size import SEED_BYTES, dense_bytes, dtype_bytes, shape_bytes

#: the dense layer DeepThin replaces is float32; size_fraction is measured against it
ORIGINAL_DTYPE = "float32"


@dataclass(frozen=True)
class DeepThinSize:
    """A solved DeepThin layout for one layer W (Q, R).

    ``m, n, r``: W_aux is (m, n) = X^f (m, r) · W^f (r, n).  ``n_params = (m + n)·r``;
    ``bytes`` counts values, the two factor shapes (and the seed if ``shuffled``);
    ``size_fraction = bytes / dense float32 bytes``; ``gcd = gcd(n, Q)``.

    Taught in: 03_deepthin
    """

    Q: int
    R: int
    m: int
    n: int
    r: int
    n_params: int
    bytes: int
    size_fraction: float
    gcd: int
    dtype: str = "float32"
    shuffled: bool = False

    @property
    def dense_bytes(self) -> int:
        """Bytes of the float32 dense W this layout replaces.

        Taught in: 03_deepthin
        """
        return dense_bytes((self.Q, self.R), dtype=ORIGINAL_DTYPE)

    @property
    def period(self) -> int:
        """Columns after which the re-layout's alignment repeats: ``n // gcd(n, Q)``.

        Taught in: 03_deepthin
        """
        return self.n // self.gcd

    @property
    def waste(self) -> int:
        """Elements of W_aux past the first Q·R, computed but unused: ``m·n − Q·R``.

        Taught in: 03_deepthin
        """
        return self.m * self.n - self.Q * self.R


def deepthin_bytes(m: int, n: int, r: int, *, dtype="float32", shuffled: bool = False) -> int:
    """Honest bytes of a DeepThin layer: both factors, their shapes, and the seed if shuffled.

    Parameters
    ----------
    m, n : int
        Shape of the auxiliary matrix W_aux (m, n).
    r : int
        Rank: X^f is (m, r) and W^f is (r, n).
    dtype : str
        Storage dtype of the factor values.
    shuffled : bool
        Add the uint64 seed of the shuffled variant (the permutation itself is regenerated
        from the seed, so it costs nothing more).

    Returns
    -------
    int
        ``(m·r + r·n)·itemsize + 2 shapes (16 bytes) [+ 8 seed bytes]``.

    Taught in: 03_deepthin
    """
    m, n, r = (check_count(k, v) for k, v in (("m", m), ("n", n), ("r", r)))
    values = dense_bytes((m, r), dtype=dtype) + dense_bytes((r, n), dtype=dtype)
    return values + shape_bytes((m, r)) + shape_bytes((r, n)) + (SEED_BYTES if shuffled else 0)


def min_aux_sum(N: int) -> tuple[int, int]:
    """Smallest ``m + n`` with ``m·n ≥ N`` (m = ceil(N / n)), as ``(n, m)`` with n ≤ m.

    n + N/n is smallest at n = √N and the ceiling adds less than 1, so only n within
    √(2√N) + 2 of √N can win; those few candidates are checked at once.

    Taught in: 03_deepthin
    """
    N = check_count("N", N)
    root = math.isqrt(N)
    half = math.isqrt(2 * root) + 3
    n = np.arange(max(1, root - half), root + half + 1, dtype=np.int64)   # candidate widths
    m = -(-N // n)                                                       # ceil(N / n)
    best = int(np.argmin(m + n))                       # first minimum: the smallest such n
    return int(n[best]), int(m[best])


def min_aux_sum_reference(N: int) -> tuple[int, int]:
    """Loop reference for :func:`min_aux_sum`: try every n from 1 to N.

    Taught in: 03_deepthin
    """
    best = None
    for n in range(1, N + 1):
        m = -(-N // n)
        if best is None or m + n < best[0]:
            best = (m + n, n, m)
    return best[1], best[2]


def deepthin_lower_bound(Q: int, R: int, *, dtype="float32", shuffled: bool = False, layout: str = "any") -> float:
    """Smallest size_fraction DeepThin can reach for W (Q, R): rank 1 and the smallest m + n.

    With ``layout="coprime"`` the smallest m + n is taken among widths n with gcd(n, Q) = 1
    only. The unrestricted minimum is often n = m = √(Q·R), which for a square layer means
    n = Q: then W_aux *is* W and DeepThin is plain rank-1 factorisation. The coprime floor
    costs a few parameters more (512 x 512: 511 x 514 instead of 512 x 512, one more per
    rank) and keeps the re-layout's benefit at the smallest sizes.

    Returns
    -------
    float
        ``deepthin_bytes(m, n, 1) / dense float32 bytes`` with ``m + n`` minimal and
        ``m·n ≥ Q·R`` (about ``2/√(Q·R)``: 0.00098 for a 2048 x 2048 layer).

    Taught in: 03_deepthin
    """
    Q, R = check_count("Q", Q), check_count("R", R)
    layout = check_layout(layout)
    n, m = min_aux_sum(Q * R)
    if layout == "coprime" and math.gcd(n, Q) > 1:
        n, m = _coprime_min_aux_sum(Q * R, Q)
    return deepthin_bytes(m, n, 1, dtype=dtype, shuffled=shuffled) / dense_bytes((Q, R), dtype=ORIGINAL_DTYPE)


def _coprime_min_aux_sum(N: int, Q: int) -> tuple[int, int]:
    """Smallest ``m + n`` with ``m·n ≥ N``, n ≤ m and gcd(n, Q) = 1, as ``(n, m)``.

    Widths are tried in windows downward from √N (where m + n is smallest); a width coprime
    to Q is never far (n = 1 always is), so the first window almost always has one.
    """
    top = math.isqrt(N)
    width = 2 * math.isqrt(2 * top) + 64
    while True:
        n = np.arange(max(1, top - width), top + 1, dtype=np.int64)
        m = -(-N // n)
        ok = (np.gcd(n, Q) == 1) & (n <= m)
        if ok.any():
            n, m = n[ok], m[ok]
            best = int(np.argmin(m + n))
            return int(n[best]), int(m[best])
        top -= width + 1


def _layout_penalty(n: np.ndarray, g: np.ndarray, layout: str) -> np.ndarray:
    """Lower is preferred: gcd for 'coprime', alignment period n/g for 'aligned', 0 for 'any'."""
    if layout == "coprime":
        return g
    if layout == "aligned":
        return n // g
    return np.zeros_like(n)


def deepthin_size(Q: int, R: int, *, size_fraction: float, rank: int | None = None,
                  layout: str = "coprime", dtype="float32", shuffled: bool = False) -> DeepThinSize:
    """Pick the DeepThin layout (m, n, r) for W (Q, R) within ``size_fraction`` of its dense bytes.

    Rules, in order:

    1. **rank** – the largest r whose smallest factors fit (``rank=None``), or exactly ``rank``.
       The reshape lets W's rank exceed r, but r still caps W_aux, so more is more expressive.
       Whole networks are planned by :func:`~thinlab.deepthin.network.plan_network`, which
       (like ``compress``) uses the paper's r = 1 by default: the larger rank did not train
       better beyond noise on lesson 03's task (see ``network.DEFAULT_RANK`` for the figures).
    2. **layout** – ``"coprime"`` (default, the paper's LCM rule) prefers gcd(n, Q) = 1;
       ``"aligned"`` prefers the smallest period n / gcd(n, Q) (1 when n divides Q);
       ``"any"`` has no preference.
    3. **budget** – among those, the largest m + n that fits (closest to the target), with
       n ≤ m (the mirror layout has the same bytes, and short rows keep the fused product cheap).

    Why gcd(n, Q) > 1 makes columns repeat blocks: column j of W starts at flat position j·Q,
    i.e. at offset o_j = (j·Q) mod n inside a row of W_aux, and its element q sits on column
    (o_j + q) mod n of W^f. The offsets o_j are the multiples of g = gcd(n, Q) and cycle with
    period n / g columns (the pattern repeats every lcm(n, Q) = n·Q / g flat positions). So the
    columns fall into only n / g alignment classes; inside a class every column is cut from the
    same shifted copies of W^f's rows, and row q of W only ever sees the n / g columns
    b ≡ q (mod g) of W^f. At n | Q (g = n) every column is a stack of whole W_aux rows and
    DeepThin collapses to a block-wise low-rank factorisation; at n = Q it *is* rank-r
    factorisation. With gcd(n, Q) = 1 the period is n: columns j and j + n are the first to share
    an alignment (2048 x 2048 at 100x: n = 1649, so only the last 399 columns repeat one), which
    is the paper's point.

    Parameters
    ----------
    Q, R : int
        W is (Q, R): Q inputs, R outputs.
    size_fraction : float
        Target compressed / dense bytes (the paper's α), in (lower bound, 1].
    rank : int or None
        Force this rank (error if it cannot fit); ``None`` takes the largest that fits.
    layout : {"coprime", "aligned", "any"}
        Preference among the n that fit (see above).
    dtype : str
        Factor storage dtype (the dense original is always float32).
    shuffled : bool
        Count the seed of the shuffled variant.

    Returns
    -------
    DeepThinSize
        ``(Q, R, m, n, r, n_params, bytes, size_fraction, gcd)``.

    Taught in: 03_deepthin
    """
    Q, R = check_count("Q", Q), check_count("R", R)
    alpha, layout = check_fraction(size_fraction), check_layout(layout)
    N, item = Q * R, dtype_bytes(dtype)
    dense = dense_bytes((Q, R), dtype=ORIGINAL_DTYPE)
    header = deepthin_bytes(1, 1, 1, dtype=dtype, shuffled=shuffled) - 2 * item
    lower = deepthin_lower_bound(Q, R, dtype=dtype, shuffled=shuffled)
    if alpha < lower:
        bound = ceil_sig(lower)
        raise ValueError(f"size_fraction={alpha:.2g} is below this layer's DeepThin lower bound "
                         f"{bound:.2g} for W of shape ({Q}, {R}); use ≥ {bound:.2g} or compress a larger layer")
    budget = math.floor(alpha * dense + 1e-6) - header   # bytes left for factor values (+1e-6: float slack)
    s_min = sum(min_aux_sum(N))
    r_max = budget // (item * s_min)
    if rank is not None:
        rank = check_count("rank", rank)
        if rank > r_max:
            need = ceil_sig((rank * s_min * item + header) / dense)
            if need > 1:  # no size_fraction ≤ 1 holds this rank: say so instead of advising one above 1
                r_top = (math.floor(dense + 1e-6) - header) // (item * s_min)
                raise ValueError(f"rank={rank} does not fit W of shape ({Q}, {R}) at any size_fraction ≤ 1: its "
                                 f"factors would take more bytes than the dense layer (the largest rank that fits at "
                                 f"size_fraction=1 is {r_top}, at size_fraction={alpha:.2g} it is {r_max}); use "
                                 f"rank ≤ {r_max}, or rank=None for the largest that fits")
            raise ValueError(f"rank={rank} does not fit size_fraction={alpha:.2g} for W of shape ({Q}, {R}): "
                             f"the largest rank that fits is {r_max}; use rank ≤ {r_max} "
                             f"or size_fraction ≥ {need:.2g}")
    r = rank if rank is not None else r_max
    E = budget // (item * r)                             # largest m + n for this rank
    side = math.isqrt(N)
    side += (side + 1) <= -(-N // (side + 1))            # largest n with n ≤ ceil(N / n)
    lo = max(r, int((E - math.sqrt(max(E * E - 4 * N, 0))) // 2))
    n = np.arange(lo, side + 1, dtype=np.int64)          # candidate widths on the n ≤ m side
    m = -(-N // n)                                       # ceil(N / n): rows of W_aux
    ok = (m + n <= E) & (m >= r)
    n, m = n[ok], m[ok]                                  # never empty: the m + n = s_min point fits
    g = np.gcd(n, Q)
    pick = np.lexsort((n, -(m + n), _layout_penalty(n, g, layout)))[0]
    n_, m_ = int(n[pick]), int(m[pick])
    nbytes = deepthin_bytes(m_, n_, r, dtype=dtype, shuffled=shuffled)
    return DeepThinSize(Q=Q, R=R, m=m_, n=n_, r=r, n_params=(m_ + n_) * r, bytes=nbytes,
                        size_fraction=nbytes / dense, gcd=int(g[pick]), dtype=str(np.dtype(dtype)),
                        shuffled=bool(shuffled))


def deepthin_size_reference(Q: int, R: int, *, size_fraction: float, rank: int | None = None,
                            layout: str = "coprime", dtype="float32", shuffled: bool = False) -> DeepThinSize:
    """Brute-force reference for :func:`deepthin_size`: every rank, every n, the same rules.

    Taught in: 03_deepthin
    """
    N, dense = Q * R, dense_bytes((Q, R), dtype=ORIGINAL_DTYPE)
    allowed = size_fraction * dense + 1e-6

    def options(r):
        for n in range(r, N + 1):
            m = -(-N // n)
            if n <= m and m >= r and deepthin_bytes(m, n, r, dtype=dtype, shuffled=shuffled) <= allowed:
                yield m, n

    r = rank or 1
    while rank is None and any(True for _ in options(r + 1)):
        r += 1
    key = {"coprime": lambda m, n: math.gcd(n, Q), "aligned": lambda m, n: n // math.gcd(n, Q),
           "any": lambda m, n: 0}[layout]
    m, n = min(options(r), key=lambda mn: (key(*mn), -(mn[0] + mn[1]), mn[1]))
    nbytes = deepthin_bytes(m, n, r, dtype=dtype, shuffled=shuffled)
    return DeepThinSize(Q=Q, R=R, m=m, n=n, r=r, n_params=(m + n) * r, bytes=nbytes, size_fraction=nbytes / dense,
                        gcd=math.gcd(n, Q), dtype=str(np.dtype(dtype)), shuffled=bool(shuffled))


#: the DeepThin explorer opens at the largest factor whose projection keeps this share of the dense
#: accuracy above chance (:func:`opening_factor`)
OPENING_KEEP = 0.5


def opening_factor(factors, score, *, baseline: float, chance: float, keep: float = OPENING_KEEP) -> dict:
    """Where the DeepThin explorer opens, and why: the one rule for the lesson and the widget.

    The largest of ``factors`` whose projected layer scores at least ``chance + keep · (baseline − chance)``
    (``keep`` of the dense accuracy above chance) and more than chance; if none does, the smallest factor
    (closest to dense); if the dense model itself is within 0.02 of chance, the smallest factor without
    scoring anything. ``score(factor) → accuracy`` is called lazily, from the largest factor down, and the
    scan stops at the first factor that keeps the bar: exact whatever the shape of the accuracy curve, and
    no factor below the answer is scored.

    Returns ``{factor, why, accuracy (None if not scored), dense, chance, keep, bar}``.

    Taught in: 03_deepthin
    """
    fs = sorted(factors)
    if not fs:
        raise ValueError("opening_factor needs at least one factor (e.g. one projection row per factor)")
    if isinstance(keep, bool) or not isinstance(keep, numbers.Real) or not 0 < keep <= 1:
        raise ValueError(f"keep={keep!r} must be a share in (0, 1], e.g. 0.5 (half the dense accuracy above chance)")
    baseline, chance = float(baseline), float(chance)
    bar = chance + keep * (baseline - chance)
    out = {"dense": baseline, "chance": chance, "keep": float(keep), "bar": bar}
    if baseline <= chance + 0.02:
        return dict(out, factor=fs[0], accuracy=None,
                    why=(f"the dense model itself is near chance here ({baseline:.3f}, chance {chance:.3f}): the "
                         f"explorer opens at the smallest factor, {fs[0]:g}x, and its accuracy readout "
                         "has little to show"))
    for F in reversed(fs):
        a = float(score(F))
        if a >= bar and a > chance:
            return dict(out, factor=F, accuracy=a,
                        why=(f"the explorer opens at {F:g}x, the largest factor here whose projection keeps at "
                             f"least {keep:.0%} of the dense accuracy above chance ({a:.3f} against dense "
                             f"{baseline:.3f}, chance {chance:.3f})"))
    a = float(score(fs[0]))
    return dict(out, factor=fs[0], accuracy=a,
                why=(f"no factor here keeps {keep:.0%} of the dense accuracy above chance ({baseline:.3f} dense, "
                     f"chance {chance:.3f}): the explorer opens at the smallest, {fs[0]:g}x "
                     f"({a:.3f}) – a trained dense layer does not survive projection onto DeepThin's "
                     "structure; DeepThin has to be trained as DeepThin (section 5)"))
