"""The numba code behind :mod:`thinlab.deepthin._compiled` (imported only when that path runs: numba
takes a while to import). Module-level functions, so that numba can cache their machine code.

Taught in: 03_deepthin
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import get_cython_function_address, intrinsic

#: scipy's Fortran ``sgemm`` (every argument by pointer), passed to the kernel at call time
SGEMM = get_cython_function_address("scipy.linalg.cython_blas", "sgemm")


@intrinsic
def fortran_call13(typingctx, fn, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12):
    """Call the void function at address ``fn`` with 13 pointer arguments (given as integers).

    Taught in: 03_deepthin
    """
    sig = types.void(types.intp, *[types.intp] * 13)

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p] * 13)
        fptr = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(fptr, [builder.inttoptr(a, i8p) for a in args[1:]])
        return context.get_dummy_value()
    return sig, codegen


@numba.njit(cache=True, nogil=True)
def gemm(f, M, N, K, A, lda, B, ldb, C, ldc, iw, fw, ch):           # pragma: no cover - compiled
    """Row-major C (M × N, row stride ldc) = A (M × K, row stride lda) @ B (K × N, row stride
    ldb); A, B, C are float32 addresses; iw (6 int32), fw [1, 0] and ch ['N'] are scratch.

    Taught in: 03_deepthin
    """
    iw[0], iw[1], iw[2], iw[3], iw[4], iw[5] = N, M, K, ldb, lda, ldc
    p, q, c = np.int64(iw.ctypes.data), np.int64(fw.ctypes.data), np.int64(ch.ctypes.data)
    fortran_call13(f, c, c, p, p + 4, p + 8, q, B, p + 12, A, p + 16, q + 4, C, p + 20)


@numba.njit(cache=True, nogil=True)
def network_block(f, X, b0, b1, meta, Tcat, Gcat, Icat, bias, work, c_off, YT):  # pragma: no cover - compiled
    """Rows b0 … b1 − 1 of a fused network's forward pass (see :func:`thinlab.deepthin._compiled.run_block`;
    ``f`` is the address of Fortran ``sgemm``, ``meta`` the per-layer table of :func:`~._compiled.pack`).

    Taught in: 03_deepthin
    """
    Bt, B = b1 - b0, YT.shape[1]
    iw = np.zeros(6, dtype=np.int32)
    fw = np.zeros(2, dtype=np.float32)
    fw[0] = 1.0
    ch = np.full(1, 78, dtype=np.uint8)                               # 'N': no transpose
    wa, ya = np.int64(work.ctypes.data), np.int64(YT.ctypes.data)
    ta, ga = np.int64(Tcat.ctypes.data), np.int64(Gcat.ctypes.data)
    nl = meta.shape[0]
    n0, x0 = meta[0, 2], meta[0, 16] * Bt
    for q in range(meta[0, 0]):                                       # layer 0's padded input: row n − 1 + q
        for b in range(Bt):
            work[x0 + (n0 - 1 + q) * Bt + b] = X[b0 + b, q]
    for ly in range(nl):
        R, n, L, chunks, live = meta[ly, 1], meta[ly, 2], meta[ly, 3], meta[ly, 4], meta[ly, 5]
        rL, K, A, Tc, rP = meta[ly, 6], meta[ly, 7], meta[ly, 8], meta[ly, 9], meta[ly, 10]
        t_off, g_off, i_off, b_off = meta[ly, 11], meta[ly, 12], meta[ly, 13], meta[ly, 14]
        relu, x_off, r = meta[ly, 15] != 0, meta[ly, 16] * Bt, meta[ly, 18]
        for t in range(live):                                         # c_k[s] for every shift, chunked
            gemm(f, rL, Bt, K, ta + 4 * t_off, K, wa + 4 * (x_off + t * L * Bt), Bt,
                 wa + 4 * (c_off + t * rL * Bt), Bt, iw, fw, ch)
        work[c_off + live * rL * Bt:c_off + chunks * rL * Bt] = 0.0   # shifts past the input: 0
        if ly == nl - 1:                                              # Yᵀ's columns b0 … b1 − 1
            out, o0, ldo, oa = YT.reshape(-1), b0, B, ya
        else:                                                         # the next layer's padded input
            out, o0, ldo, oa = work, (meta[ly + 1, 16] + meta[ly + 1, 2] - 1) * Bt, Bt, wa
        s_off = c_off + chunks * rL * Bt
        for a in range(A):                                            # slot t of class a = column t·A + a
            if r == 1:                                                # c values at rows first + p·n
                src, lds = wa + 4 * (c_off + Icat[i_off + a * rP] * Bt), n * Bt
            else:                                                     # gathered in G's order
                for i in range(rP):
                    row = c_off + Icat[i_off + a * rP + i] * Bt
                    work[s_off + i * Bt:s_off + (i + 1) * Bt] = work[row:row + Bt]
                src, lds = wa + 4 * s_off, Bt
            gemm(f, Tc, Bt, rP, ga + 4 * (g_off + a * Tc * rP), rP, src, lds, oa + 4 * (o0 + a * ldo),
                 A * ldo, iw, fw, ch)
        if ly < nl - 1:                                                   # rows past R: zeros, finite input
            out[o0 + R * ldo:o0 + Tc * A * ldo] = 0.0                     # or not (X^f's zeros times c)
        if b_off >= 0 or relu:                                        # bias, then ReLU, on the R live rows
            for j in range(R):
                bj = bias[b_off + j] if b_off >= 0 else np.float32(0.0)
                row = out[o0 + j * ldo:o0 + j * ldo + Bt]
                if relu:
                    for b in range(Bt):
                        v = row[b] + bj
                        row[b] = np.float32(0.0) if v <= 0.0 else v            # NaN stays NaN, as np.maximum
                else:
                    for b in range(Bt):
                        row[b] += bj
