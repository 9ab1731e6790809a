"""Index plans for the fused DeepThin product, built once per layer (see :mod:`.fused`).

Column j of W starts at flat position j·Q: row i0_j = (j·Q) // n of W_aux, offset
o_j = (j·Q) mod n, and spans P_j = ceil((o_j + Q) / n) rows. Its p-th segment is row
i0_j + p at shift s = p·n − o_j relative to the input, so

    y_j = Σ_p Σ_k X^f[i0_j + p, k] · c_k[p·n − o_j],   c_k[s] = Σ_b W^f[k, b] · x̃[b + s]

with x̃ the input zero-padded outside [0, Q) (that clips the first and last segments).
Columns with the same offset o share every c value: they form one *alignment class*.

Taught in: 03_deepthin
"""
from __future__ import annotations

import numpy as np


def column_classes(Q: int, R: int, n: int, *, order: str = "offset") -> dict:
    """Group the R columns by alignment offset.

    The offsets o_j = (j·Q) mod n repeat with period Π = n / gcd(n, Q): column j is in the class of
    j mod Π. ``order="offset"`` numbers the classes by *descending* offset (the FFT buffer holds
    them in that order, so the einsum read-out is a view); ``order="column"`` numbers them by
    their first column, class a = {a, a + Π, a + 2Π, …}, so the per-class results, stacked, are
    the output's columns in order (no gather).

    Returns
    -------
    dict with ``i0`` (R,) first W_aux row of each column, ``rows`` (R,) rows spanned (P_j),
    ``P`` max rows spanned, ``offsets`` (A,) offset of each class, ``cls`` (R,) class of each
    column, ``slot`` (R,) position of the column inside its class, ``T`` largest class size,
    ``period`` Π.

    Taught in: 03_deepthin
    """
    start = np.arange(R, dtype=np.int64) * Q
    i0, off = start // n, start % n
    rows = -(-(off + Q) // n)                                  # ceil((o_j + Q) / n)
    period = n // int(np.gcd(n, Q))
    if order == "column":
        cls, slot = np.arange(R, dtype=np.int64) % period, np.arange(R, dtype=np.int64) // period
        return dict(i0=i0, rows=rows, P=int(rows.max()), offsets=off[: min(R, period)], cls=cls, slot=slot,
                    T=-(-R // period), period=period)
    if order != "offset":
        raise ValueError(f"order={order!r} is not 'offset' or 'column'")
    offsets, cls = np.unique(-off, return_inverse=True)        # descending offsets
    offsets = -offsets
    counts = np.bincount(cls, minlength=len(offsets))
    order_ = np.argsort(cls, kind="stable")
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slot = np.empty(R, dtype=np.int64)
    slot[order_] = np.arange(R) - first[cls[order_]]
    return dict(i0=i0, rows=rows, P=int(rows.max()), offsets=offsets, cls=cls.astype(np.int64),
                slot=slot, T=int(counts.max()), period=period)


def gather_xf(Xf: np.ndarray, plan: dict, *, classes_last: bool = False) -> np.ndarray:
    """X^f rows of every column, grouped by class: X^f[i0_j + p, k] (0 past the P_j rows).

    Parameters
    ----------
    classes_last : bool
        False: G (A, T, r·P) with G[a, t, k·P + p] (for batched GEMMs over classes).
        True: G (T, r, P, A) with G[t, k, p, a] (for an einsum vectorised along classes).

    Returns
    -------
    G : ndarray float32, about (1 + n/Q)·m·r values: X^f re-indexed, not expanded.

    Taught in: 03_deepthin
    """
    m, r = Xf.shape
    P, A, T = plan["P"], len(plan["offsets"]), plan["T"]
    p = np.arange(P)
    rows = plan["i0"][:, None] + p                             # (R, P) W_aux row of each segment
    live = p < plan["rows"][:, None]                           # (R, P) segment exists
    vals = np.where(live[:, :, None], Xf[np.minimum(rows, m - 1)], 0).transpose(0, 2, 1)   # (R, P, r) → (R, r, P)
    if classes_last:
        G = np.zeros((T, r, P, A), dtype=np.float32)
        G[plan["slot"], :, :, plan["cls"]] = vals
        return G
    G = np.zeros((A, T, r, P), dtype=np.float32)
    G[plan["cls"], plan["slot"]] = vals
    return G.reshape(A, T, r * P)                              # (A, T, r, P) → (A, T, r·P)


def band_blocks(Wf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """W^f cut for multiplying consecutive n-long input blocks: H (2·A·r, n), no input copied.

    With the input split into blocks b_p = x̃[p·n : (p + 1)·n) (a reshape), segment p of class a
    reads positions [p·n − o_a, p·n − o_a + n): the last o_a of block p − 1, then the first
    n − o_a of block p. So c_k[p·n − o_a] = (H_hi · b_{p−1} + H_lo · b_p)[(a, k)] with
    H_hi[(a, k), v] = W^f[k, v − n + o_a] (v ≥ n − o_a) and H_lo[(a, k), v] = W^f[k, v + o_a]
    (v < n − o_a). Rows 0 … A·r − 1 of the result are H_hi, the rest H_lo.

    Taught in: 03_deepthin
    """
    r, n = Wf.shape
    v = np.arange(n)[None, :]
    hi = v - n + offsets[:, None]                              # (A, n) W^f column under v, previous block
    lo = v + offsets[:, None]                                  # (A, n) W^f column under v, current block
    H = np.zeros((2, len(offsets), r, n), dtype=np.float32)
    for half, b in enumerate((hi, lo)):                        # two halves, vectorised inside
        live = (b >= 0) & (b < n)
        H[half] = np.where(live[:, None, :], Wf[:, np.clip(b, 0, n - 1)].transpose(1, 0, 2), 0)   # (A, r, n)
    return H.reshape(2 * len(offsets) * r, n)                  # (2, A, r, n) → (2·A·r, n)


def next_fast_len(target: int) -> int:
    """Smallest 2^a·3^b·5^c ≥ target (sizes numpy's FFT handles fastest).

    Taught in: 03_deepthin
    """
    best = 1 << max(0, (target - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            k = -(-target // p35)                              # smallest power of 2 with p35·2^a ≥ target
            cand = p35 * (1 << max(0, (k - 1).bit_length()))
            best = min(best, cand)
            p35 *= 3
        p5 *= 5
    return best


def fft_plan(Wf: np.ndarray, plan: dict, Q: int) -> dict:
    """Spectra and read-out for computing every c_k with one FFT correlation per row.

    Linear correlation over shifts s ∈ [−(n−1), Q−1] needs a length N ≥ Q + n − 1; N is also
    ≥ P·n so that every read below stays inside the buffer. The spectra are pre-multiplied by a
    phase ramp that delays the result by n − g (g = gcd(n, Q)), so shift s sits at index
    s + n − g, and class a's segment p, c_k[p·n − o_a], at ``rows[p, a]`` = p·n + n − g − o_a.
    When the classes are all n/g offsets in descending order (o_a = n − g − a·g) that is
    p·n + a·g: the first P·n entries reshaped to (P, n/g, g), slot 0 – a view (``view``).
    Indices past Q + n − g hold wrapped values of the circular correlation; only segments that
    X^f's zeros (beyond a column's P_j rows) multiply read them.

    Returns
    -------
    dict with ``N``, ``g``, ``spectra`` (N//2 + 1, r) complex64, ``rows`` (P, A), ``view`` (bool).

    Taught in: 03_deepthin
    """
    r, n = Wf.shape
    P, offsets = plan["P"], np.asarray(plan["offsets"])
    g = int(np.gcd(n, Q))
    N = next_fast_len(max(Q + n - 1, P * n))
    ramp = np.exp(-2j * np.pi * np.arange(N // 2 + 1) * (n - g) / N)     # delay by n − g samples
    spectra = (np.conj(np.fft.rfft(Wf.astype(np.float64), n=N)) * ramp).astype(np.complex64)   # (r, N//2 + 1)
    rows = n * np.arange(P)[:, None] + (n - g - offsets)[None, :]          # (P, A) buffer index of each shift
    view = np.array_equal(offsets, n - g - g * np.arange(n // g))
    return dict(N=N, g=g, spectra=np.ascontiguousarray(spectra.T), rows=rows, view=view)


def estimate_ns(algorithm: str, *, Q: int, n: int, r: int, A: int, P: int, N: int, B: int = 1) -> float:
    """Rough one-thread time model (ns for a batch of B rows: correlation and read-out; the
    combination is the same for all three) used to pick the correlation method. Constants fitted
    to one-thread CPU-time measurements of TFKaldi- and lesson-sized layers on a 2-core AVX-512
    machine (numpy 2.4, scipy 1.17, OpenBLAS 0.3); only the ordering matters.

    Taught in: 03_deepthin
    """
    if algorithm == "windows":     # A·P small GEMMs (r, n) @ (n, B) on copied windows of the input
        return 600.0 * A * P + 0.03 * B * A * P * n * r + 1.0 * B * A * P * n + 4000.0
    if algorithm == "band":        # one GEMM (2·A·r, n) @ (n, (P + 1)·B), the blocks copied in, a shifted add
        return 0.015 * 2 * A * r * n * (P + 1) * B + 0.5 * B * ((P + 1) * n + A * r * P) + 7000.0
    if algorithm == "fft":         # rfft of each row, r inverse FFTs of length N (faster per row in a batch), read-out
        return (0.16 + 0.25 / B) * B * (r + 1) * N * np.log2(N) + 0.5 * B * A * r * P * (1 + (r > 1)) + 14000.0
    raise ValueError(f"algorithm={algorithm!r} is not one of 'windows', 'band', 'fft'")
