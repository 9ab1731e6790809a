"""The numba code behind :mod:`thinlab.deepthin._compiled` (imported only when that path runs: numba
takes a while to import). Module-level functions, so that numba can cache their machine code; the
AVX-512 kernels live in this file too, because numba's on-disk cache of :func:`network_block` is
keyed on this file alone (a change elsewhere would not rebuild it).

Two ways to do a layer's products:

* ``sgemm`` (scipy's BLAS, called directly, :func:`gemm`): one ``(r·L, K) @ (K, B)`` product per
  chunk of the correlation against the Toeplitz block, one ``(T, r·P) @ (r·P, B)`` per class.
* hand-written 512-bit kernels, two numba intrinsics emitting LLVM IR with ``<16 x float>``
  vectors and ``llvm.fma.v16f32`` (one AVX-512 fused multiply-add per 16 batch rows), for a block
  of ``16·H`` batch rows (H = 1 or 2 vectors per row of the work array):

  - :func:`correlation16` / :func:`correlation32`: one chunk of L = 12 shifts of one rank's
    correlation, ``d[l] = Σ_{j<n} w[j]·x̃[l + j]`` (l < 12), in the order of a GEMM: each input row
    is loaded once and meets every shift it belongs to, its taps broadcast from W^f. The L·H sums
    stay in registers (24 of the 32 zmm registers at H = 2) for the whole chunk. Unlike the
    Toeplitz block that ``sgemm`` multiplies, the first and last L − 1 input rows meet only the
    shifts they belong to (the block's zero corners are never multiplied: n·L products per chunk
    instead of (n + L − 1)·L), and there is no call overhead per chunk.
  - :func:`combination16` / :func:`combination32`: up to 7 output rows of one alignment class,
    ``y[i] = Σ_p G[i, p]·c[p]`` with c read at any row stride (in place at rank 1), then the bias
    and the ReLU on the way to memory; the 7·H sums stay in registers.

  Why by hand: numba's own loops vectorise to 256-bit registers on AVX-512 machines, and the
  ``sgemm`` calls they replace are small (a 12 × 112 block times 112 × 32), where a BLAS call's
  setup and the zero corners cost a fifth of the time. Measured on this course's 2-core AVX-512
  machine, one thread, batch 32, side by side: a 2048-input layer's correlation (n = 101) 70 µs
  against 87 µs for the ``sgemm`` chunks; a 2048-output layer's combination (101 classes of 21
  columns) 21 µs against 24 µs. They run only where the CPU has AVX-512
  (:func:`thinlab.deepthin._compiled.simd_available`): elsewhere LLVM would split every vector in
  two or four and spill the sums.

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


#: shifts per correlation chunk (the plan's ``TOEPLITZ_CHUNK``: the result rows must land where
#: the ``sgemm`` path puts them)
SHIFTS = 12
#: output rows per combination block
ROWS = 7

_F = ir.FloatType()
_V = ir.VectorType(_F, 16)
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _fma(builder):
    m = builder.module
    return m.globals.get("llvm.fma.v16f32") or ir.Function(m, ir.FunctionType(_V, [_V, _V, _V]), "llvm.fma.v16f32")


def _c(v: int):
    return ir.Constant(_I64, v)


def _ptr(builder, address):
    return builder.inttoptr(address, _F.as_pointer())


def _vload(builder, base, offset):
    """16 floats at base + offset (unaligned)."""
    return builder.load(builder.bitcast(builder.gep(base, [offset]), _V.as_pointer()), align=4)


def _vstore(builder, value, base, offset):
    builder.store(value, builder.bitcast(builder.gep(base, [offset]), _V.as_pointer()), align=4)


def _bcast(builder, base, offset):
    """One float at base + offset, in all 16 lanes."""
    s = builder.load(builder.gep(base, [offset]), align=4)
    one = builder.insert_element(ir.Constant(_V, ir.Undefined), s, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(_V, ir.Undefined), ir.Constant(ir.VectorType(_I32, 16), [0] * 16))


def _correlation(H: int):
    @intrinsic
    def correlation(typingctx, x, w, d, n):
        """d[l] = Σ_{j<n} w[j]·x[l + j] for l < SHIFTS: x and d rows of 16·H floats, w n floats;
        arguments are addresses (int64) and n (≥ SHIFTS − 1).

        Taught in: 03_deepthin
        """
        sig = types.void(types.intp, types.intp, types.intp, types.intp)
        L, width = SHIFTS, 16 * H

        def codegen(context, builder, signature, args):
            xp, wp, dp = (_ptr(builder, a) for a in args[:3])
            n = args[3]
            fma, zero = _fma(builder), ir.Constant(_V, [0.0] * 16)
            acc = [[zero] * H for _ in range(L)]

            def step(v, shifts):                              # input row v meets the shifts l in `shifts`
                xs = [_vload(builder, xp, builder.add(builder.mul(v, _c(width)), _c(16 * h))) for h in range(H)]
                for l in shifts:                              # tap w[v − l]
                    tap = _bcast(builder, wp, builder.sub(v, _c(l)))
                    for h in range(H):
                        acc[l][h] = builder.call(fma, [tap, xs[h], acc[l][h]])

            for v in range(L - 1):                            # head: row v meets shifts 0 … v
                step(_c(v), range(v + 1))
            head = builder.block
            loop = builder.append_basic_block("corr.body")
            tail = builder.append_basic_block("corr.tail")
            builder.cbranch(builder.icmp_signed("<", _c(L - 1), n), loop, tail)
            builder.position_at_end(loop)                     # body: rows L − 1 … n − 1 meet every shift
            v = builder.phi(_I64)
            v.add_incoming(_c(L - 1), head)
            phis = [[builder.phi(_V) for _ in range(H)] for _ in range(L)]
            for l in range(L):
                for h in range(H):
                    phis[l][h].add_incoming(acc[l][h], head)
            before = acc
            acc = [list(row) for row in phis]
            step(v, range(L))
            v1 = builder.add(v, _c(1))
            end = builder.block
            v.add_incoming(v1, end)
            for l in range(L):
                for h in range(H):
                    phis[l][h].add_incoming(acc[l][h], end)
            builder.cbranch(builder.icmp_signed("<", v1, n), loop, tail)
            builder.position_at_end(tail)                     # tail: row n + e meets shifts e + 1 … L − 1
            merged = [[builder.phi(_V) for _ in range(H)] for _ in range(L)]
            for l in range(L):
                for h in range(H):
                    merged[l][h].add_incoming(before[l][h], head)
                    merged[l][h].add_incoming(acc[l][h], end)
            acc = merged
            for e in range(L - 1):
                step(builder.add(n, _c(e)), range(e + 1, L))
            for l in range(L):
                for h in range(H):
                    _vstore(builder, acc[l][h], dp, _c(l * width + 16 * h))
            return context.get_dummy_value()
        return sig, codegen
    return correlation


def _combination(H: int):
    @intrinsic
    def combination(typingctx, g, gs, c, cs, P, m, y, ys, bias, bs, relu):
        """y[i] = act(Σ_{p<P} g[i·gs + p]·c[p·cs] + bias[i·bs]) for i < m (1 … ROWS): c and y rows of
        16·H floats at row strides cs and ys (in floats), act the ReLU when ``relu`` ≠ 0 (NaN stays NaN,
        as np.maximum); every argument an int64 (the pointers as addresses).

        Taught in: 03_deepthin
        """
        sig = types.void(*[types.intp] * 11)
        width = 16 * H

        def codegen(context, builder, signature, args):
            gp, cp, yp, bp = (_ptr(builder, args[i]) for i in (0, 2, 6, 8))
            gs, cs, P, m, ys, bs, relu = (args[i] for i in (1, 3, 4, 5, 7, 9, 10))
            fma, zero = _fma(builder), ir.Constant(_V, [0.0] * 16)
            is_relu = builder.icmp_signed("!=", relu, _c(0))
            done = builder.append_basic_block("comb.done")
            cases = [builder.append_basic_block(f"comb.rows{M}") for M in range(1, ROWS + 1)]
            switch = builder.switch(m, done)
            for M, block in zip(range(1, ROWS + 1), cases):
                switch.add_case(_c(M), block)
                builder.position_at_end(block)
                entry = builder.block
                loop = builder.append_basic_block(f"comb.loop{M}")
                store = builder.append_basic_block(f"comb.store{M}")
                builder.branch(loop)
                builder.position_at_end(loop)
                p = builder.phi(_I64)
                p.add_incoming(_c(0), entry)
                phis = [[builder.phi(_V) for _ in range(H)] for _ in range(M)]
                for row in phis:
                    for a in row:
                        a.add_incoming(zero, entry)
                base = builder.mul(p, cs)
                xs = [_vload(builder, cp, builder.add(base, _c(16 * h))) for h in range(H)]
                new = []
                for i in range(M):
                    tap = _bcast(builder, gp, builder.add(builder.mul(_c(i), gs), p))
                    new.append([builder.call(fma, [tap, xs[h], phis[i][h]]) for h in range(H)])
                p1 = builder.add(p, _c(1))
                end = builder.block
                p.add_incoming(p1, end)
                for i in range(M):
                    for h in range(H):
                        phis[i][h].add_incoming(new[i][h], end)
                builder.cbranch(builder.icmp_signed("<", p1, P), loop, store)
                builder.position_at_end(store)
                for i in range(M):
                    b = _bcast(builder, bp, builder.mul(_c(i), bs))
                    for h in range(H):
                        v = builder.fadd(new[i][h], b)
                        clipped = builder.select(builder.fcmp_ordered("<=", v, zero), zero, v)
                        _vstore(builder, builder.select(is_relu, clipped, v), yp,
                                builder.add(builder.mul(_c(i), ys), _c(16 * h)))
                builder.branch(done)
            builder.position_at_end(done)
            return context.get_dummy_value()
        return sig, codegen
    return combination


#: the kernels for 16 and 32 batch rows (H = 1, 2)
correlation16, correlation32 = _correlation(1), _correlation(2)
combination16, combination32 = _combination(1), _combination(2)


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
def network_block(f, X, b0, b1, Bt, meta, Tcat, Gcat, Icat, Wcat, bias, work, work_rows, scratch_rows, YT,
                  simd):  # pragma: no cover - compiled
    """Rows b0 … b1 − 1 of a fused network's forward pass (see :func:`thinlab.deepthin._compiled.run_block`;
    ``f`` is the address of Fortran ``sgemm``, ``meta`` the per-layer table of :func:`~._compiled.pack`).
    The work array's rows are Bt ≥ b1 − b0 floats wide: columns past b1 − b0 compute padding that
    nothing reads (every product keeps the batch columns apart), and the last layer then goes to
    the work array's own output rows, of which the real columns are copied to Yᵀ. With ``simd``
    true, layers that fit the AVX-512 kernels above (Bt = 16 or 32, n ≥ 11) run on them, the
    others on ``sgemm``.

    Taught in: 03_deepthin
    """
    Br, B = b1 - b0, YT.shape[1]
    c_off = work_rows * Bt
    iw = np.zeros(6, dtype=np.int32)
    fw = np.zeros(2, dtype=np.float32)
    fw[0] = 1.0
    ch = np.full(1, 78, dtype=np.uint8)                               # 'N': no transpose
    wa, ya = np.int64(work.ctypes.data), np.int64(YT.ctypes.data)
    ta, ga = np.int64(Tcat.ctypes.data), np.int64(Gcat.ctypes.data)
    fa, ba = np.int64(Wcat.ctypes.data), np.int64(bias.ctypes.data)
    nobias = np.zeros(1, dtype=np.float32)
    za = np.int64(nobias.ctypes.data)
    nl = meta.shape[0]
    n0, x0 = meta[0, 2], meta[0, 16] * Bt
    for q in range(meta[0, 0]):                                       # layer 0's padded input: row n − 1 + q
        for b in range(Br):
            work[x0 + (n0 - 1 + q) * Bt + b] = X[b0 + b, q]
    for ly in range(nl):
        R, n, L, chunks, live = meta[ly, 1], meta[ly, 2], meta[ly, 3], meta[ly, 4], meta[ly, 5]
        rL, K, A, Tc, rP = meta[ly, 6], meta[ly, 7], meta[ly, 8], meta[ly, 9], meta[ly, 10]
        t_off, g_off, i_off, b_off = meta[ly, 11], meta[ly, 12], meta[ly, 13], meta[ly, 14]
        relu, x_off, r, w_off = meta[ly, 15] != 0, meta[ly, 16] * Bt, meta[ly, 18], meta[ly, 19]
        vec = simd and (Bt == 16 or Bt == 32) and L == SHIFTS and n >= SHIFTS - 1
        for t in range(live):                                         # c_k[s] for every shift, chunked
            if vec:                                                   # rank by rank, the zero corners skipped
                for k in range(r):
                    xp, wp = wa + 4 * (x_off + t * L * Bt), fa + 4 * (w_off + k * n)
                    dp = wa + 4 * (c_off + (t * rL + k * L) * Bt)
                    if Bt == 32:
                        correlation32(xp, wp, dp, n)
                    else:
                        correlation16(xp, wp, dp, n)
            else:
                gemm(f, rL, Bt, K, ta + 4 * t_off, K, wa + 4 * (x_off + t * L * Bt), Bt,
                     wa + 4 * (c_off + t * rL * Bt), Bt, iw, fw, ch)
        work[c_off + live * rL * Bt:c_off + chunks * rL * Bt] = 0.0   # shifts past the input: 0
        if ly == nl - 1 and Br == Bt:                                 # Yᵀ's columns b0 … b1 − 1
            out, o0, ldo, oa = YT.reshape(-1), b0, B, ya
        elif ly == nl - 1:                                            # padded: the work array's output rows
            out, o0, ldo, oa = work, (work_rows + scratch_rows) * Bt, Bt, wa
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
            if vec:                                                   # the class's columns below R, 7 at a time,
                for t0 in range(0, (R - a + A - 1) // A, ROWS):       # bias and ReLU on the way out
                    m = min(ROWS, (R - a + A - 1) // A - t0)
                    gp, yp = ga + 4 * (g_off + (a * Tc + t0) * rP), oa + 4 * (o0 + (t0 * A + a) * ldo)
                    bp, bs = (ba + 4 * (b_off + t0 * A + a), A) if b_off >= 0 else (za, 0)
                    if Bt == 32:
                        combination32(gp, rP, src, lds, rP, m, yp, A * ldo, bp, bs, np.int64(relu))
                    else:
                        combination16(gp, rP, src, lds, rP, m, yp, A * ldo, bp, bs, np.int64(relu))
            else:
                gemm(f, Tc, Bt, rP, ga + 4 * (g_off + a * Tc * rP), rP, src, lds, oa + 4 * (o0 + a * ldo),
                     A * ldo, iw, fw, ch)
        for j in range(R, Tc * A):                                    # rows past R: zeros, finite input
            out[o0 + j * ldo:o0 + j * ldo + Bt] = 0.0                 # or not (X^f's zeros times c)
        if not vec and (b_off >= 0 or relu):                          # bias, then ReLU, on the R live rows
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
    if Br < Bt:                                                       # the real columns of the output rows
        o0 = (work_rows + scratch_rows) * Bt
        for j in range(YT.shape[0]):
            for b in range(Br):
                YT[j, b0 + b] = work[o0 + j * Bt + b]
