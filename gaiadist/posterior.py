"""Quantiles of one-dimensional distance posteriors by adaptive quadrature.

For one star with parallax ``plx`` and error ``err`` (mas) and a generalised
gamma prior ``p(r) ∝ r**beta exp(-(r/L)**alpha)``, the posterior of
``u = ln(r / pc)`` has the log density (up to a constant)

    g(u) = (beta + 1) u - (r/L)**alpha - (plx - w)**2 / (2 err**2),  w = 1000/r.

The prior part is concave in ``u``; the likelihood part is concave wherever
``w > plx / 2``. So ``g`` has one maximum on ``u < u_c = ln(2000 / plx)`` (on
the whole line when ``plx <= 0``), and beyond ``u_c`` at most a second, broad
bump near the prior's mode, which matters only at low signal-to-noise. The
kernel finds the first mode by a vectorised grid search and Newton steps,
brackets where the density has
fallen by ``exp(-TAIL)``, adds the far region when a bound says it can carry
mass, and integrates on piecewise-uniform segments with a rule that is exact
for exponential pieces. Quantiles come from inverting that piecewise CDF in
closed form. Everything is written relative to the mode so that single
precision keeps its accuracy for very narrow and very wide posteriors alike.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

__all__ = ["SIGMA_PROBS", "distance_quantiles"]

#: Posterior probabilities of the 15.87th, 50th and 84.13th percentiles
#: (the normal distribution's -1, 0 and +1 sigma points).
SIGMA_PROBS = (
    0.5 * math.erfc(1.0 / math.sqrt(2.0)),
    0.5,
    1.0 - 0.5 * math.erfc(1.0 / math.sqrt(2.0)),
)

TAIL = 25.0  # log-density drop from the mode at which the grid stops
CORE = 4.0  # half-width of the central segments, in Laplace widths
NODES_PER_SEGMENT = 16
_N_EXPAND = 24
_GRID = 17  # intervals per level of _narrow (16 points: whole vectors)
_MODE_LEVELS = 3  # the mode's bracket narrowed 17**3 times
_NEWTON_STEPS = 2
_CROSSING_LEVELS = 1  # the tail contour to 1/17 of its factor-2 bracket
_N_SPLIT = 3  # empty segments that _split_empty fills
_N_SCAN = 32
_FLOOR = -80.0  # lowest relative log density kept (safe for float32 exp)
_MIN_PADDED = 1024  # smallest padded chunk


def distance_quantiles(
    parallax,
    parallax_error,
    *,
    alpha,
    beta,
    length_scale,
    probs=SIGMA_PROBS,
    chunk_size: int = 8192,
    progress: bool | None = False,
) -> np.ndarray:
    """Posterior distance quantiles for many stars at once.

    Parameters
    ----------
    parallax, parallax_error : array-like
        Parallax and its error in mas, zero point already removed. Errors must
        be positive and both finite; rows that are not get NaN.
    alpha, beta, length_scale : float or array-like
        Generalised gamma prior parameters (``length_scale`` in pc), scalars or
        one per star. The EDSD prior is ``alpha=1, beta=2``.
    probs : sequence of float, optional
        Posterior probabilities of the quantiles wanted.
    chunk_size : int, optional
        Stars computed together; bounds the memory used (about 10 kB per star).
    progress : bool or None, optional
        Show a progress bar over the chunks; ``None`` shows it only when
        standard error is a terminal.

    Returns
    -------
    quantiles : `numpy.ndarray`
        Shape ``(n_stars, len(probs))``, distances in pc (float64 array holding
        values computed in JAX's default float precision).
    """
    plx, err, alpha, beta, length_scale = np.broadcast_arrays(
        *(
            np.asarray(x, dtype=np.float64)
            for x in (parallax, parallax_error, alpha, beta, length_scale)
        )
    )
    n = plx.shape[0] if plx.ndim else 1
    plx, err, alpha, beta, length_scale = (
        np.reshape(x, (n,)) for x in (plx, err, alpha, beta, length_scale)
    )
    ok = (
        np.isfinite(plx)
        & np.isfinite(err)
        & (err > 0)
        & np.isfinite(length_scale)
        & (length_scale > 0)
        & (alpha > 0)
        & (beta > -1)
    )
    probs_arr = jnp.asarray(probs)
    out = np.full((n, len(probs)), np.nan)
    # Fewer stars than a chunk: pad to the next power of two, and to at
    # least _MIN_PADDED, so that inputs of many sizes (the last chunk of each
    # file in a bulk run, single stars) share a few compilations (6-8 s each
    # on 2 cores; 1,024 stars take 3 ms once compiled).
    wanted = max(_MIN_PADDED, 1 << max(n - 1, 0).bit_length())
    chunk_size = max(1, min(int(chunk_size), wanted))
    bar = tqdm(
        total=n,
        desc="star distances",
        unit="star",
        unit_scale=True,
        leave=False,
        disable=None if progress is None else not progress,
    )
    for start in range(0, n, chunk_size):
        sl = slice(start, min(start + chunk_size, n))
        m = sl.stop - sl.start
        # Pad to a fixed shape so that one compiled kernel serves every chunk;
        # unusable rows are replaced by a harmless star and blanked afterwards.
        args = [
            _pad(np.where(ok[sl], x[sl], good), chunk_size, good)
            for x, good in (
                (plx, 1.0),
                (err, 1.0),
                (alpha, 1.0),
                (beta, 2.0),
                (length_scale, 1000.0),
            )
        ]
        q = np.asarray(_quantiles_kernel(*args, probs_arr))[:m]
        out[sl] = np.where(ok[sl, None], q, np.nan)
        bar.update(m)
    bar.close()
    return out


def _pad(x: np.ndarray, size: int, fill: float) -> np.ndarray:
    if x.shape[0] == size:
        return x
    return np.concatenate([x, np.full(size - x.shape[0], fill)])


def _quantiles_kernel(plx, err, alpha, beta, length_scale, probs):
    """The wanted quantiles (pc) of a chunk of stars: shape (n, n_probs)."""
    # Stars run along the last, contiguous axis and trial points along the
    # first: XLA's CPU code then works on whole vectors of stars, and sums,
    # selections and sorting over trial points are elementwise operations
    # between rows (2-5x faster than the same work along rows of stars).
    # Five compiled programs, not one: fused together, XLA computes values
    # again inside each of their uses (the segment ends at every node, the
    # log density at the nodes in each use of it): 2-3x the time.
    rows = [
        jnp.asarray(x, jnp.result_type(float))[None, :]
        for x in (plx, err, alpha, beta, length_scale)
    ]
    u_mode, ends = _segments(*rows)
    ends = _split_empty(ends)
    values = _log_density_at_nodes(*rows, u_mode, ends)
    mass, rise = _interval_masses(ends, *values)
    return _invert_cdf(u_mode, ends, mass, rise, probs).T


@jax.jit
def _segments(plx, err, alpha, beta, length_scale):
    """Each star's mode (1, n) and segment ends (n_seg + 1, n), some repeated."""
    star = _Star(plx, err, alpha, beta, jnp.log(length_scale))
    u_mode = star.mode()
    return u_mode, star.segment_ends(u_mode)


@jax.jit
def _log_density_at_nodes(plx, err, alpha, beta, length_scale, u_mode, ends):
    """Log density and its slope at the nodes, relative to the mode.

    The nodes are the ``NODES_PER_SEGMENT`` evenly spaced points that start
    each interval of each of the ``n_seg`` segments, and the segment ends:
    returns ``(logf, slope)`` at the former, ``(n_seg, NODES_PER_SEGMENT, n)``
    each, and at the latter, ``(n_seg + 1, n)`` each.
    """
    star = _Star(plx, err, alpha, beta, jnp.log(length_scale))
    nodes = _nodes(ends)
    inner = nodes.shape[0] * nodes.shape[1]
    points = jnp.concatenate([nodes.reshape(inner, -1), ends], axis=0)
    logf, slope = star.relative_logp(u_mode, points, with_slope=True)
    return (
        logf[:inner].reshape(nodes.shape),
        slope[:inner].reshape(nodes.shape),
        logf[inner:],
        slope[inner:],
    )


def _nodes(ends):
    """The first point of every interval: shape (n_seg, NODES_PER_SEGMENT, n)."""
    frac = jnp.arange(NODES_PER_SEGMENT, dtype=ends.dtype) / NODES_PER_SEGMENT
    lo, hi = ends[:-1, None, :], ends[1:, None, :]
    return lo + (hi - lo) * frac[None, :, None]


@jax.jit
def _interval_masses(ends, logf, slope, logf_ends, slope_ends):
    """Each interval's probability mass (unnormalised) and log-density rise."""
    n_seg, n_nodes, n = logf.shape
    # (Reductions over the first axis of a 3-d array are slow in XLA's CPU
    # code: 40x a reduction over the middle axis. Here and below they are
    # reshaped to 2-d or written as sums of slices.)
    top = jnp.maximum(
        jnp.max(logf.reshape(n_seg * n_nodes, n), axis=0), jnp.max(logf_ends, axis=0)
    )
    # The values at each interval's end: the next node, or the segment's end.
    logf_next = jnp.concatenate([logf[:, 1:], logf_ends[1:, None]], axis=1)
    slope_next = jnp.concatenate([slope[:, 1:], slope_ends[1:, None]], axis=1)
    logf_next = jnp.maximum(logf_next - top, _FLOOR)
    logf = jnp.maximum(logf - top, _FLOOR)
    h = jnp.diff(ends, axis=0)[:, None, :] / NODES_PER_SEGMENT  # (n_seg, 1, n)
    rise = logf_next - logf
    # Exact for log f linear on the interval, plus the first-order effect of
    # its curvature, estimated from the slopes at both ends.
    linear = h * jnp.exp(logf) * _exprel(rise)
    curvature = (slope_next - slope) * h
    mass = linear * jnp.clip(1.0 + 0.5 * curvature * _bow(rise), 0.5, 2.0)
    return mass, rise


@jax.jit
def _invert_cdf(u_mode, ends, mass, rise, probs):
    """The wanted quantiles (pc) from the intervals' masses: (n_probs, n).

    The CDF in two levels (a running sum over a long axis is slow in XLA):
    which segment holds each wanted probability, then which interval in it.
    Selections are masked sums, not gathers.
    """
    n_seg, n_nodes = mass.shape[:2]
    seg_mass = jnp.sum(mass, axis=1)  # (n_seg, n)
    running = [seg_mass[:1]]
    for j in range(1, n_seg):
        running.append(running[-1] + seg_mass[j : j + 1])
    seg_cdf = jnp.concatenate(running, axis=0)
    total = running[-1]
    step = jnp.diff(ends, axis=0) / n_nodes  # (n_seg, n)
    lower = jnp.tril(jnp.ones((n_nodes, n_nodes), mass.dtype))
    out = []
    for j in range(probs.shape[0]):
        target = probs[j] * total  # (1, n)
        seg = jnp.minimum(jnp.sum(seg_cdf < target, axis=0, keepdims=True), n_seg - 1)
        inner = sum(jnp.where(seg == i, mass[i], 0.0) for i in range(n_seg))
        inner_rise = sum(jnp.where(seg == i, rise[i], 0.0) for i in range(n_seg))
        inner_cdf = _pick(seg_cdf - seg_mass, seg) + lower @ inner
        idx = jnp.sum(inner_cdf < target, axis=0, keepdims=True)
        idx = jnp.minimum(idx, n_nodes - 1)
        # Within the interval, invert the log-linear CDF
        # h f0 (exp(rise t) - 1) / rise at the wanted fraction of its mass.
        m = _pick(inner, idx)
        part = (target - (_pick(inner_cdf, idx) - m)) / m
        k = _pick(inner_rise, idx)
        y = part * _exprel(k)
        safe = jnp.where(k == 0, 1.0, k)
        t = jnp.where(k == 0, y, jnp.log1p(jnp.maximum(k * y, -0.999999)) / safe)
        h = _pick(step, seg)
        out.append(_pick(ends, seg) + (idx + jnp.clip(t, 0.0, 1.0)) * h)
    return jnp.exp(u_mode + jnp.concatenate(out, axis=0))


def _exprel(x):
    """``expm1(x) / x``, continuous at 0."""
    small = jnp.abs(x) < 1e-3
    safe = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 + x / 2.0 + x * x / 6.0, jnp.expm1(safe) / safe)


def _bow(x):
    """Mean of ``t (t - 1)`` on [0, 1] under the weight ``exp(x t)``.

    Equal to ``(e^x (2 - x) - (2 + x)) / (x^2 (e^x - 1))``, an even function of
    ``x`` (evaluated at ``-|x|`` to avoid overflow), ``-1/6 + x^2/360`` near 0.
    """
    a = -jnp.abs(x)
    small = a > -0.5
    safe = jnp.where(small, -1.0, a)
    ea = jnp.exp(safe)
    exact = (ea * (2.0 - safe) - (2.0 + safe)) / (safe * safe * (ea - 1.0))
    return jnp.where(small, -1.0 / 6.0 + a * a / 360.0, exact)


class _Star:
    """Log posterior of ``u = ln r`` and its landmarks, for a row of stars.

    Every parameter is a ``(1, n)`` array so that it broadcasts against
    ``(k, n)`` arrays of trial points.
    """

    def __init__(self, plx, err, alpha, beta, log_l):
        self.plx, self.alpha, self.beta, self.log_l = plx, alpha, beta, log_l
        self.inv_var = 1.0 / (err * err)
        big = jnp.asarray(jnp.finfo(plx.dtype).max / 4, plx.dtype)
        pos = plx > 0
        safe_plx = jnp.where(pos, plx, 1.0)
        # Prior mode in u; likelihood peak; start of the convex likelihood part.
        self.u_prior = log_l + jnp.log((beta + 1.0) / alpha) / alpha
        self.u_like = jnp.where(pos, jnp.log(1000.0 / safe_plx), big)
        self.u_c = jnp.where(pos, jnp.log(2000.0 / safe_plx), big)

    def dlogp(self, u):
        """Derivative of ``g`` with respect to ``u``."""
        w = 1000.0 * jnp.exp(-u)
        s = jnp.exp(self.alpha * (u - self.log_l))
        return (self.beta + 1.0) - self.alpha * s - (self.plx - w) * w * self.inv_var

    def prior_change(self, u0, delta):
        """``P(u0 + delta) - P(u0)`` for the prior part ``P`` of ``g``."""
        s0 = jnp.exp(self.alpha * (u0 - self.log_l))
        return (self.beta + 1.0) * delta - s0 * jnp.expm1(self.alpha * delta)

    def relative_logp(self, u0, delta, with_slope=False):
        """``g(u0 + delta) - g(u0)``, accurate for small and large ``delta``.

        With ``with_slope``, also return ``g'(u0 + delta)``.
        """
        w0 = 1000.0 * jnp.exp(-u0)
        s0 = jnp.exp(self.alpha * (u0 - self.log_l))
        grow = jnp.expm1(self.alpha * delta)
        shrink = jnp.expm1(-delta)
        w = w0 * (1.0 + shrink)
        prior = (self.beta + 1.0) * delta - s0 * grow
        value = prior - 0.5 * w0 * shrink * (w + w0 - 2.0 * self.plx) * self.inv_var
        if not with_slope:
            return value
        s = s0 * (1.0 + grow)
        slope = (self.beta + 1.0) - self.alpha * s - (self.plx - w) * w * self.inv_var
        return value, slope

    def curvature(self, u):
        """``-g''(u)``, the local inverse variance in ``u``."""
        w = 1000.0 * jnp.exp(-u)
        s = jnp.exp(self.alpha * (u - self.log_l))
        return self.alpha**2 * s + w * (2.0 * w - self.plx) * self.inv_var

    def mode(self):
        """The maximum of ``g`` on the region where ``g`` is concave."""
        a = jnp.minimum(self.u_like, self.u_prior) - 1.0  # g'(a) > 0 here
        steps = 2.0 ** jnp.arange(16, dtype=a.dtype)[:, None]
        cand = jnp.minimum(a + steps, self.u_c)  # (16, n)
        k = _first(self.dlogp(cand) < 0)
        found = k < cand.shape[0]
        hi = _pick(cand, k)
        prev = _pick(cand, jnp.maximum(k - 1, 0))
        lo = jnp.where(found, jnp.where(k > 0, prev, a), self.u_c)
        hi = jnp.where(found, hi, self.u_c)

        lo, hi = _narrow(self.dlogp, lo, hi, _MODE_LEVELS)
        # Newton steps on g' from the middle, kept inside the bracket: the
        # bracket is about 128 / 17**3 wide at most, the narrowest posterior 1e-4.
        u = 0.5 * (lo + hi)
        for _ in range(_NEWTON_STEPS):
            curv = self.curvature(u)
            step = self.dlogp(u) / jnp.where(curv > 0, curv, 1.0)
            u = jnp.where(curv > 0, jnp.clip(u + step, lo, hi), u)
        return u

    def segment_ends(self, u_mode):
        """Sorted segment ends, relative to the mode, covering the posterior."""
        width = 1.0 / jnp.sqrt(jnp.maximum(self.curvature(u_mode), 0.0))

        def inside(delta):  # > 0 inside the TAIL contour around the mode
            return self.relative_logp(u_mode, delta) + TAIL

        d_c = self.u_c - u_mode
        left = -_crossing(lambda x: inside(-x), width, jnp.inf)
        right = _crossing(inside, width, d_c)

        # Beyond u_c, g(u) < P(u) + lk(u_c), with lk the likelihood part: where
        # that bound comes within TAIL of the mode, a second bump may carry mass.
        w0 = 1000.0 * jnp.exp(-u_mode)
        w_c = 0.5 * self.plx
        lk_c = -0.5 * (w_c - w0) * (w_c + w0 - 2.0 * self.plx) * self.inv_var
        d_p = self.u_prior - u_mode

        def far_inside(delta):
            return self.prior_change(u_mode, delta) + lk_c + TAIL

        has_far = (self.plx > 0) & (far_inside(d_p) > 0)
        start = jnp.maximum(d_p, d_c)
        far = start + _crossing(
            lambda x: far_inside(start + x), 1.0 / self.alpha, jnp.inf
        )
        end = jnp.where(has_far, jnp.maximum(right, far), right)

        # Locate the far bump on a coarse scan, refined by a parabola.
        scan_lo = jnp.minimum(d_c, end)
        step = (end - scan_lo) / (_N_SCAN - 1)
        grid = scan_lo + step * jnp.arange(_N_SCAN, dtype=step.dtype)[:, None]
        vals = self.relative_logp(u_mode, grid)
        d_far = _scan_peak(grid, vals, step)
        prior_width = 1.0 / jnp.sqrt(self.alpha * (self.beta + 1.0))
        curv_far = self.curvature(u_mode + d_far)
        w_far = jnp.where(
            curv_far > 0,
            1.0 / jnp.sqrt(jnp.where(curv_far > 0, curv_far, 1.0)),
            prior_width,
        )
        w_far = jnp.minimum(w_far, 2.0 * prior_width)
        d_far = jnp.where(has_far, d_far, 0.0)
        w_far = jnp.where(has_far, w_far, width)

        points = jnp.concatenate(
            [
                left,
                -CORE * width,
                jnp.zeros_like(width),
                CORE * width,
                d_far - CORE * w_far,
                d_far,
                d_far + CORE * w_far,
                end,
            ],
            axis=0,
        )
        return _sort_rows(jnp.clip(points, left, end))


@jax.jit
def _split_empty(points):
    """Segment ends with the empty segments (up to ``_N_SPLIT``) filled.

    Each repeated point of the sorted ``points`` (rows) moves to the middle
    of the longest segment. Without a far bump, or where the core reaches
    the tail contour, several of the segment ends coincide; their nodes are
    better spent on the longest segments. The first and last points stay
    where they are.
    """
    last = points.shape[0] - 2  # index of the last segment
    row = jnp.arange(points.shape[0])[:, None]

    def one(points):
        # Segment j's length in row j; the last row, which has none, padded.
        lengths = jnp.diff(points, axis=0, append=points[-1:])
        shortest = jnp.min(jnp.where(row > last, jnp.inf, lengths), 0, keepdims=True)
        longest = jnp.max(jnp.where(row > last, -jnp.inf, lengths), 0, keepdims=True)
        shortest, longest = _first(lengths == shortest), _first(lengths == longest)
        empty = _pick(lengths, shortest) <= 0
        # Of the two equal points, the one that is not the first or last.
        drop = jnp.where(shortest == last, last, shortest + 1)
        mid = _pick(points, longest) + 0.5 * _pick(lengths, longest)
        return _sort_rows(jnp.where(empty & (row == drop), mid, points))

    for _ in range(_N_SPLIT):
        points = one(points)
    return points


def _scan_peak(grid, vals, step, axis=0):
    """Peak of ``vals`` on an evenly spaced ``grid`` along ``axis``.

    The largest value, refined by a parabola through it and its neighbours
    (moved at most one ``step``).
    """
    k = _first(vals == jnp.max(vals, axis=axis, keepdims=True), axis)
    k = jnp.clip(k, 1, vals.shape[axis] - 2)
    g_m, g_0, g_p = (_pick(vals, k + j, axis) for j in (-1, 0, 1))
    denom = g_m - 2.0 * g_0 + g_p
    shift = jnp.where(
        denom < 0, 0.5 * (g_m - g_p) / jnp.where(denom < 0, denom, -1.0), 0.0
    )
    return _pick(grid, k, axis) + step * jnp.clip(shift, -1.0, 1.0)


def _crossing(fn, scale, limit, axis=0):
    """Smallest ``x >= 0`` (up to ``limit``) where ``fn(x)`` turns non-positive.

    ``fn`` maps a 2-d array of offsets, trial points along ``axis``, to values;
    it must be positive at 0 and decreasing up to ``limit``. Steps of
    ``scale * 2**k`` bracket the crossing and `_narrow` refines it to 1/289 of
    its width. Returns ``limit`` (or the last step) where ``fn`` stays
    positive.
    """
    steps = scale * 2.0 ** _index(_N_EXPAND, axis, scale.dtype)
    dist = jnp.minimum(steps, limit)  # _N_EXPAND trial points
    k = _first(fn(dist) <= 0, axis)
    found = k < _N_EXPAND
    hi = _pick(dist, k, axis)
    lo = jnp.where(k > 0, _pick(dist, jnp.maximum(k - 1, 0), axis), 0.0)

    lo, hi = _narrow(fn, lo, hi, _CROSSING_LEVELS, axis)
    return jnp.where(found, hi, _pick(dist, _N_EXPAND - 1, axis))


def _index(size, axis, dtype=jnp.int32):
    """``arange(size)`` laid along ``axis`` of a 2-d array."""
    return jnp.arange(size, dtype=dtype).reshape((size, 1) if axis == 0 else (1, size))


def _pick(values, index, axis=0):
    """``values[index[j], j]`` for each column (``axis=0``; rows for 1).

    A masked sum: XLA's gathers on the CPU are slower than the arithmetic.
    """
    hit = _index(values.shape[axis], axis) == index
    return jnp.sum(jnp.where(hit, values, 0.0), axis=axis, keepdims=True)


def _first(mask, axis=0):
    """Index of the first True along ``axis`` (its length where there is none).

    ``jnp.argmax`` would do, but on the CPU XLA's argmax (a reduction over
    value-index pairs) is 5x slower than computing the values it looks at.
    Telling "none" by the index, not by ``jnp.any``, spares XLA computing the
    mask's inputs again for a second reduction.
    """
    size = mask.shape[axis]
    return jnp.min(jnp.where(mask, _index(size, axis), size), axis=axis, keepdims=True)


def _narrow(fn, lo, hi, levels, axis=0):
    """The bracket ``[lo, hi]`` of a sign change, ``_GRID**levels`` times narrower.

    ``fn`` turns from positive to non-positive inside the bracket. Each
    level evaluates ``fn`` at ``_GRID - 1`` points inside the bracket at once
    (along ``axis``) and keeps the interval where the sign changes (``fn`` is
    taken to change sign once there). A few vectorised levels instead of a
    loop of bisections: XLA's loops on the CPU cost far more than the
    arithmetic.
    """
    frac = (_index(_GRID - 1, axis, lo.dtype) + 1.0) / _GRID
    for _ in range(levels):
        width = (hi - lo) / _GRID
        j = jnp.sum(fn(lo + (hi - lo) * frac) > 0, axis=axis, keepdims=True)
        lo, hi = lo + j * width, jnp.where(j == _GRID - 1, hi, lo + (j + 1) * width)
    return lo, hi


def _sort_rows(values):
    """Each column of ``values`` (8, n) sorted, by a network of 19 min/max pairs.

    Batcher's odd-even merge sort: elementwise between rows, where XLA's sort
    on the CPU calls a comparator per pair of elements.
    """
    if values.shape[0] != 8:
        raise ValueError("the sorting network is written for 8 rows")
    rows = [values[i : i + 1] for i in range(8)]
    for i, j in _BATCHER_8:
        rows[i], rows[j] = jnp.minimum(rows[i], rows[j]), jnp.maximum(rows[i], rows[j])
    return jnp.concatenate(rows, axis=0)


# Batcher's odd-even merge sort of 8 elements: 19 compare-exchange pairs.
_BATCHER_8 = (
    (0, 1), (2, 3), (4, 5), (6, 7),
    (0, 2), (1, 3), (4, 6), (5, 7),
    (1, 2), (5, 6),
    (0, 4), (1, 5), (2, 6), (3, 7),
    (2, 4), (3, 5),
    (1, 2), (3, 4), (5, 6),
)  # fmt: skip
