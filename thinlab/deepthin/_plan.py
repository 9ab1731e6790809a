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


def column_classes(Q: int, R: int, n: int) -> dict:
    """Group the R columns by alignment offset.

    Returns
    -------
    dict with ``i0`` (R,) first W_aux row of each column, ``rows`` (R,) rows spanned (P_j),
    ``P`` max rows spanned, ``offsets`` (A,) distinct offsets in *descending* order (the FFT
    read-out below wants that), ``cls`` (R,) class of each column, ``slot`` (R,) position of
    the column inside its class, ``T`` largest class size.

    Taught in: 03_deepthin
    """
    start = np.arange(R, dtype=np.int64) * Q
    i0, off = start // n, start % n
    rows = -(-(off + Q) // n)                                  # ceil((o_j + Q) / n)
    offsets, cls = np.unique(-off, return_inverse=True)        # descending offsets
    offsets = -offsets
    counts = np.bincount(cls, minlength=len(offsets))
    order = np.argsort(cls, kind="stable")
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slot = np.empty(R, dtype=np.int64)
    slot[order] = np.arange(R) - first[cls[order]]
    return dict(i0=i0, rows=rows, P=int(rows.max()), offsets=offsets, cls=cls.astype(np.int64),
                slot=slot, T=int(counts.max()))


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


def band_matrix(Wf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """W^f laid as a banded Toeplitz matrix against two consecutive input blocks: (A·r, 2n).

    Segment p of class a reads input positions [p·n − o_a, p·n − o_a + n), which lie in the
    2n-long window z_p = x̃[(p − 1)·n : (p + 1)·n), at z_p offset n − o_a. So
    c_k[p·n − o_a] = Σ_u z_p[u] · H[(a, k), u] with H[(a, k), u] = W^f[k, u − n + o_a].

    Taught in: 03_deepthin
    """
    r, n = Wf.shape
    b = np.arange(2 * n)[None, :] - n + offsets[:, None]       # (A, 2n) W^f column under each u
    live = (b >= 0) & (b < n)
    H = np.where(live[:, None, :], Wf[:, np.clip(b, 0, n - 1)].transpose(1, 0, 2), 0)   # (A, r, 2n)
    return np.ascontiguousarray(H.reshape(-1, 2 * n), dtype=np.float32)   # (A, r, 2n) → (A·r, 2n)


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
    """Spectra and read-out for computing every c_k with one FFT correlation.

    Linear correlation over shifts s ∈ [−(n−1), Q−1] needs a length N ≥ Q + n − 1. The spectra
    are pre-multiplied by a phase ramp that delays the result by n − 1, so shift s sits at
    index u = s + n − 1 ∈ [0, N) of a (r, L) buffer, L = max(N, P·n + g − 1) (zeros past N: shifts
    ≥ Q only meet zeros of G). When all n/g offsets occur, class a (descending offsets,
    o_a = n − g − a·g) needs C[k, p, a] = c_k[p·n − o_a] = buf[k, p·n + g − 1 + a·g]: the buffer
    reshaped to (r, P, A, g), last slot – a view, no gather. Otherwise ``index`` (r, P, A)
    gathers the values from the flat (r·L,) buffer.

    Returns
    -------
    dict with ``N``, ``L``, ``g``, ``spectra`` (r, N//2 + 1) complex64, ``index`` (None when
    every offset occurs).

    Taught in: 03_deepthin
    """
    r, n = Wf.shape
    N = next_fast_len(Q + n - 1)
    P, offsets = plan["P"], plan["offsets"]
    ramp = np.exp(-2j * np.pi * np.arange(N // 2 + 1) * (n - 1) / N)       # delay by n − 1 samples
    spectra = (np.conj(np.fft.rfft(Wf.astype(np.float64), n=N)) * ramp).astype(np.complex64)
    g = int(np.gcd(n, Q))
    L = max(N, P * n + g - 1)
    index = None
    if len(offsets) != n // g:                                              # some offsets never occur
        u = n - 1 + n * np.arange(P)[:, None] - offsets[None, :]            # (P, A) buffer index of each shift
        index = L * np.arange(r)[:, None, None] + u[None]                   # (r, P, A) into (r·L,)
    return dict(N=N, L=L, g=g, spectra=spectra, index=index)


def estimate_ns(method: str, *, Q: int, n: int, r: int, A: int, P: int, N: int, B: int = 1) -> float:
    """Rough time model (ns for B rows, combination step included) used to pick the correlation
    method; constants fitted to measurements on a 2-core AVX-512 machine (numpy 2.4, OpenBLAS),
    only the ordering matters.

    Taught in: 03_deepthin
    """
    if method == "windows":     # copy A windows of P·n inputs, one (B·A·P, n) @ (n, r) GEMM, transpose
        return 0.3 * B * A * n * P + 0.02 * B * A * n * P * r + 2.0 * B * A * P * r + 15000.0
    if method == "band":        # read the (A·r, 2n) band matrix, GEMM against (2n, P·B)
        return 0.1 * 2 * n * A * r + 0.02 * B * P * 2 * n * A * r + 1.0 * B * P * 2 * n + 26000.0
    if method == "fft":         # rfft of x, r inverse FFTs of length N, read-out of A·r·P values
        return 3.4 * B * (r + 1) * N + 1.0 * B * A * r * P + 30000.0
    raise ValueError(f"method={method!r} is not one of 'windows', 'band', 'fft'")
