"""``seurat``: Seurat's module score, ``AddModuleScore`` (Seurat 4.3), reproduced draw for draw.

Method (Tirosh et al. 2016, Science 352:189, doi:10.1126/science.aad0501, as implemented in Seurat;
Hao et al. 2021, Cell 184:3573, doi:10.1016/j.cell.2021.04.048): every gene's average over all cells
(``Matrix::rowMeans`` of the ``data`` slot) is ordered, jittered by ``rnorm()/1e30`` and cut into
``nbin`` (24) quantile bins with ``ggplot2::cut_number(right = FALSE)``; for each signature gene, in
signature order, ``ctrl`` (100) genes are drawn with ``sample()`` from its bin; the control set is the
union of the draws (it may contain signature genes: Seurat does not remove them). Score = mean of the
signature genes minus mean of the control genes, per cell. Units: those of ``X`` (log-normalised
expression); 0 = as expressed as expression-matched genes.

Assumptions: ``X`` is log-normalised as Seurat's ``data`` slot (``NormalizeData``), not scaled; the bins
are taken over all genes and all cells of the matrix scored, so a score depends on the dataset.

Randomness and exactness: ``random_state`` is Seurat's ``seed`` (its default is ``seed = 1``; pass
``random_state=1`` for a default Seurat call; ``None`` draws a seed from numpy's global generator).
R's default generator is ported (:class:`RRandom`: Mersenne-Twister seeded by ``set.seed``'s
scrambling, ``rnorm`` by inversion with R's AS 241 ``qnorm``, ``sample`` by rejection sampling as in
R >= 3.6), so the draws are R's, bit for bit. Each signature is scored as its own call,
``AddModuleScore(object, features = list(genes), seed = random_state)``, so a signature's score does not depend on the other signatures scored with it; a single call with
several lists (one random stream through all of them) is :func:`seurat_control_genes` with all the
lists. Checked against R 4.2.2 / Seurat 4.3.0 on the Wu 2021 breast cancer data (seeds 1 and 7, each
signature alone and all in one call): equal to ~2e-16 (``tests/engines/test_seurat_r.py``).

Outside Seurat's domain (fewer distinct gene averages than bins, so repeated quantile breaks; or a bin
with fewer than ``ctrl`` genes) Seurat stops with an error; this engine logs a warning and goes on:
repeated breaks leave empty bins (R's ``.bincode`` rule) and a small bin gives all its genes.

Kernel: the score is linear, ``X @ (W_sig - W_ctrl)``, one pass over the CSR rows. Each signature draws its
own controls, so a gene is in about five sets' controls at once and the sets share no structure: ``W`` is
held as dense rows (:class:`._linear.DenseRowTable`, chosen by :func:`._linear.linear_table`), a vector
add per stored value. 30 signatures x 50,000 cells: 1.1 s in all against 117 s for ``AddModuleScore``
(``benchmarks/results/score_50k.json``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numba
import numpy as np

from ._base import LinearPlan, MethodMeta
from ._scanpy import control_gene_plan

log = logging.getLogger(__name__)

META = MethodMeta(
    name="seurat",
    description="Seurat AddModuleScore (4.3): mean of the signature genes minus the mean of 100 control "
    "genes drawn per signature gene from its expression bin (24 bins); R's random draws reproduced",
    value_range=(-np.inf, np.inf),
    reference="https://doi.org/10.1016/j.cell.2021.04.048",
    assumptions="log-normalised, unscaled expression (Seurat's data slot); gene averages (the bins) are taken "
    "over all cells of the matrix scored, so scores depend on the dataset's composition; "
    "random_state is Seurat's seed (Seurat's default is 1)",
    kind="linear",
    defaults={"ctrl": 100, "nbin": 24},
    gene_statistics=("seurat_gene_averages",),
)

_TWO_POW_32_INV = 2.3283064365386963e-10  # MT_genrand: y * 2^-32, a double in [0, 1)
_I2_32M1 = 2.328306437080797e-10  # 1 / (2^32 - 1), R's fixup() bound
_BIG = 134217728.0  # 2^27, R's norm_rand() INVERSION


class RRandom:
    """R's default random number generator (``RNGkind()``: "Mersenne-Twister", "Inversion", "Rejection").

    ``RRandom(seed)`` is ``set.seed(seed)``: the seed is scrambled by 50 steps of the LCG
    ``seed = 69069 * seed + 1`` (mod 2^32), 625 further steps fill the Mersenne-Twister state (the first
    word is R's position counter, set to 624 so the first draw regenerates the state). The tempered
    32-bit outputs are numpy's ``MT19937`` (the same generator) given that state.
    """

    _BLOCK = 8192

    def __init__(self, seed: int):
        s = int(seed) & 0xFFFFFFFF
        for _ in range(50):
            s = (69069 * s + 1) & 0xFFFFFFFF
        state = np.empty(625, dtype=np.uint32)
        for j in range(625):
            s = (69069 * s + 1) & 0xFFFFFFFF
            state[j] = s
        self._bitgen = np.random.MT19937()
        self._bitgen.state = {"bit_generator": "MT19937", "state": {"key": state[1:], "pos": 624}}
        self._buffer: list[float] = []
        self._next = 0

    def _draw(self, n: int) -> np.ndarray:
        u = self._bitgen.random_raw(n).astype(np.float64) * _TWO_POW_32_INV
        u[u <= 0.0] = 0.5 * _I2_32M1  # fixup(): never 0 or 1
        u[(1.0 - u) <= 0.0] = 1.0 - 0.5 * _I2_32M1
        return u

    def runif(self, n: int) -> np.ndarray:
        """``runif(n)``: ``n`` uniforms in (0, 1)."""
        held = self._buffer[self._next : self._next + n]
        self._next += len(held)
        rest = n - len(held)
        return np.concatenate([np.asarray(held, dtype=np.float64), self._draw(rest)]) if rest else np.asarray(held)

    def _unif(self) -> float:
        if self._next >= len(self._buffer):
            self._buffer, self._next = self._draw(self._BLOCK).tolist(), 0
        u = self._buffer[self._next]
        self._next += 1
        return u

    def rnorm(self, n: int) -> np.ndarray:
        """``rnorm(n)``: inversion, two uniforms each (``u = (int)(BIG*u1) + u2; qnorm(u / BIG)``)."""
        u = self.runif(2 * n)
        return r_qnorm((np.floor(_BIG * u[0::2]) + u[1::2]) / _BIG)

    def unif_index(self, dn: int) -> int:
        """``R_unif_index(dn)``: an integer in ``[0, dn)`` by rejection from ``ceil(log2(dn))`` random bits,
        taken 16 at a time from ``floor(unif_rand() * 65536)``."""
        if dn <= 0:
            return 0
        bits = math.ceil(math.log2(dn))
        mask = (1 << bits) - 1
        while True:
            v = 0
            for _ in range(0, bits + 1, 16):
                v = 65536 * v + int(self._unif() * 65536)
            v &= mask
            if v < dn:
                return v

    def sample(self, n: int, size: int) -> np.ndarray:
        """``sample.int(n, size) - 1`` without replacement (R's swap algorithm; 0-based positions).

        The same draws as :meth:`unif_index` in a loop, in numba: the kernel takes uniforms from the
        buffer and stops when it runs out, to be called again with a refilled buffer."""
        if size > n:
            raise ValueError(f"cannot take a sample larger than the population ({size} > {n})")
        pool = np.arange(n, dtype=np.int64)
        out = np.empty(size, dtype=np.int64)
        k, remaining = 0, n
        buf = np.asarray(self._buffer, dtype=np.float64)
        while True:
            k, remaining, self._next = _sample_swap(buf, self._next, pool, remaining, out, k, size)
            if k == size:
                break
            # the buffer ran out inside a draw: keep its unused uniforms and append a new block
            buf, self._next = np.concatenate([buf[self._next :], self._draw(self._BLOCK)]), 0
        self._buffer = buf
        return out


@numba.njit(cache=True)
def _sample_swap(buf, nxt, pool, remaining, out, k, size):
    """R's ``sample.int`` swap loop from uniform ``buf[nxt:]``: ``R_unif_index`` by rejection on
    ``ceil(log2(n))`` bits taken 16 at a time (``floor(u * 65536)``). Returns ``(k, remaining, nxt)``;
    stops early, before a draw it cannot finish, when ``buf`` runs out (the caller refills; an
    unfinished draw is restarted with its uniforms unconsumed, so the stream is R's)."""
    nbuf = buf.shape[0]
    while k < size:
        dn = remaining
        bits = 0
        while (1 << bits) < dn:
            bits += 1
        mask = (1 << bits) - 1
        n_words = bits // 16 + 1
        j = -1
        p = nxt
        while True:
            if p + n_words > nbuf:
                return k, remaining, nxt
            v = 0
            for _ in range(n_words):
                v = 65536 * v + int(buf[p] * 65536)
                p += 1
            v &= mask
            nxt = p
            if v < dn:
                j = v
                break
        out[k] = pool[j]
        remaining -= 1
        pool[j] = pool[remaining]
        k += 1
    return k, remaining, nxt


def _horner(r: np.ndarray, coefficients: Sequence[float]) -> np.ndarray:
    acc = np.full_like(r, coefficients[0])
    for c in coefficients[1:]:
        acc = acc * r + c
    return acc


# Wichura's AS 241 (Applied Statistics 37:477, 1988) as R 4.2's qnorm() evaluates it
_Q_CENTRAL = (
    (
        2509.0809287301226727,
        33430.575583588128105,
        67265.770927008700853,
        45921.953931549871457,
        13731.693765509461125,
        1971.5909503065514427,
        133.14166789178437745,
        3.387132872796366608,
    ),
    (
        5226.495278852854561,
        28729.085735721942674,
        39307.89580009271061,
        21213.794301586595867,
        5394.1960214247511077,
        687.1870074920579083,
        42.313330701600911252,
        1.0,
    ),
)
_Q_TAIL = (
    (
        7.7454501427834140764e-4,
        0.0227238449892691845833,
        0.24178072517745061177,
        1.27045825245236838258,
        3.64784832476320460504,
        5.7694972214606914055,
        4.6303378461565452959,
        1.42343711074968357734,
    ),
    (
        1.05075007164441684324e-9,
        5.475938084995344946e-4,
        0.0151986665636164571966,
        0.14810397642748007459,
        0.68976733498510000455,
        1.6763848301838038494,
        2.05319162663775882187,
        1.0,
    ),
)
_Q_FAR = (
    (
        2.01033439929228813265e-7,
        2.71155556874348757815e-5,
        0.0012426609473880784386,
        0.026532189526576123093,
        0.29656057182850489123,
        1.7848265399172913358,
        5.4637849111641143699,
        6.6579046435011037772,
    ),
    (
        2.04426310338993978564e-15,
        1.4215117583164458887e-7,
        1.8463183175100546818e-5,
        7.868691311456132591e-4,
        0.0148753612908506148525,
        0.13692988092273580531,
        0.59983220655588793769,
        1.0,
    ),
)


def r_qnorm(p: np.ndarray) -> np.ndarray:
    """R's ``qnorm(p)`` for ``0 < p < 1`` (AS 241, operation for operation, so equal to the last bit)."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    out = np.empty_like(p)
    central = np.abs(q) <= 0.425
    qc = q[central]
    r = 0.180625 - qc * qc
    out[central] = qc * _horner(r, _Q_CENTRAL[0]) / _horner(r, _Q_CENTRAL[1])
    qt = q[~central]
    r = np.sqrt(-np.log(np.where(qt > 0, 1.0 - p[~central], p[~central])))
    val = np.empty_like(r)
    near = r <= 5.0
    val[near] = _horner(r[near] - 1.6, _Q_TAIL[0]) / _horner(r[near] - 1.6, _Q_TAIL[1])
    val[~near] = _horner(r[~near] - 5.0, _Q_FAR[0]) / _horner(r[~near] - 5.0, _Q_FAR[1])
    out[~central] = np.where(qt < 0, -val, val)
    return out


def r_quantile7(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``quantile(x, probs, type = 7)`` with R's arithmetic (``index = 1 + (n - 1) * probs``)."""
    xs = np.sort(np.asarray(x, dtype=np.float64))
    index = 1.0 + max(len(xs) - 1, 0) * np.asarray(probs, dtype=np.float64)
    lo, hi = np.floor(index).astype(np.int64), np.ceil(index).astype(np.int64)
    qs = xs[lo - 1]
    upper = xs[hi - 1]
    i = (index > lo) & (upper != qs)
    h = (index - lo)[i]
    qs[i] = (1 - h) * qs[i] + h * upper[i]
    return qs


def r_seq_unit(length_out: int) -> np.ndarray:
    """``seq(0, 1, length.out = length_out)``: ``c(0, (1:(n - 2)) * (1 / (n - 1)), 1)``."""
    by = 1.0 / (length_out - 1)
    return np.concatenate([[0.0], np.arange(1, length_out - 1) * by, [1.0]])


def cut_number(x: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """``ggplot2::cut_number(x, n, labels = FALSE, right = FALSE)``: bin codes 1..n and whether the breaks
    are unique (where they are not, ggplot2 stops; here the bins between equal breaks are left empty)."""
    breaks = r_quantile7(x, r_seq_unit(n + 1))
    # .bincode(right = FALSE, include.lowest = TRUE): [b_k, b_k+1), the last bin closed
    codes = np.minimum(np.searchsorted(breaks, x, side="right"), n)
    return codes, bool(np.all(np.diff(breaks) > 0))


def seurat_bins(gene_means: np.ndarray, rng: RRandom, nbin: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """``(order, codes)``: the genes ordered by average (R's stable ``order``) and their bins, drawing the
    jitter ``rnorm(n_genes) / 1e30`` from ``rng`` as ``AddModuleScore`` does."""
    means = np.asarray(gene_means, dtype=np.float64)
    if not np.all(np.isfinite(means)):
        raise ValueError("seurat: some gene averages are not finite (NaN or inf in X); Seurat needs finite data")
    order = np.argsort(means, kind="stable")
    jittered = means[order] + rng.rnorm(len(means)) / 1e30
    codes, unique_breaks = cut_number(jittered, nbin)
    if not unique_breaks:
        log.warning(
            "seurat: too few distinct gene averages for %d bins (Seurat stops here: 'Insufficient data "
            "values'); repeated quantile breaks leave some bins empty",
            nbin,
        )
    return order, codes


def seurat_control_genes(
    gene_means: np.ndarray, feature_sets: Sequence[np.ndarray], *, ctrl: int = 100, nbin: int = 24, seed: int = 1
) -> list[np.ndarray]:
    """The control genes of one ``AddModuleScore(object, features = feature_sets, seed = seed)`` call.

    ``gene_means``: every gene's average over all cells (``Matrix::rowMeans`` of ``data``);
    ``feature_sets``: gene positions of each signature, in signature order, de-duplicated. Returns the
    control gene positions of each set (unique, in draw order). One random stream runs through all the
    sets in order, as in R.
    """
    rng = RRandom(seed)
    order, codes = seurat_bins(gene_means, rng, nbin)
    code_of = np.empty(len(order), dtype=np.int64)
    code_of[order] = codes
    members = {int(c): order[codes == c] for c in np.unique(codes)}  # each bin in ordered-average order
    too_small = False
    out = []
    for features in feature_sets:
        drawn = []
        for gene in features:
            pool = members[int(code_of[gene])]
            if len(pool) < ctrl:
                too_small = True
                drawn.append(pool)
            else:
                drawn.append(pool[rng.sample(len(pool), ctrl)])
        ctrl_genes = np.concatenate(drawn) if drawn else np.empty(0, np.int64)
        out.append(ctrl_genes[np.sort(np.unique(ctrl_genes, return_index=True)[1])])
    if too_small:
        log.warning(
            "seurat: an expression bin holds fewer than ctrl=%d genes (Seurat stops here: 'cannot take a "
            "sample larger than the population'); all genes of such a bin are controls",
            ctrl,
        )
    return out


def _seed(random_state: int | None) -> int:
    if random_state is None:
        return int(np.random.randint(0, 2**31 - 1))
    seed = int(random_state)
    if not -(2**31) < seed < 2**31:
        raise ValueError(f"seurat: random_state {random_state} is not an R integer seed (|seed| < 2^31)")
    return seed


def prepare(ctx, gene_sets, *, random_state, ctrl, nbin) -> LinearPlan:
    means = ctx.seurat_gene_averages  # Matrix::rowMeans: float64 sums cell by cell
    seed = _seed(random_state)
    controls = {id(gs): seurat_control_genes(means, [gs.idx], ctrl=ctrl, nbin=nbin, seed=seed)[0] for gs in gene_sets}

    def drawn(gs):
        genes = controls[id(gs)]
        return genes, np.full(len(genes), 1.0 / max(len(genes), 1))

    return control_gene_plan(ctx, gene_sets, drawn, {"ctrl": ctrl, "nbin": nbin, "seed": seed})
