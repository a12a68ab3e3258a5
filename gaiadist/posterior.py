"""Quantiles of one-dimensional distance posteriors by adaptive quadrature.

For one star with parallax ``plx`` and error ``err`` (mas) and a generalised
gamma prior ``p(r) ∝ r**beta exp(-(r/L)**alpha)``, the posterior of
``u = ln(r / pc)`` has the log density (up to a constant)

    g(u) = (beta + 1) u - (r/L)**alpha - (plx - w)**2 / (2 err**2),  w = 1000/r.

The prior part is concave in ``u``; the likelihood part is concave wherever
``w > plx / 2``. So ``g`` has one maximum on ``u < u_c = ln(2000 / plx)`` (on
the whole line when ``plx <= 0``), and beyond ``u_c`` at most a second, broad
bump near the prior's mode, which matters only at low signal-to-noise. The
kernel finds the first mode by bisection, brackets where the density has
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
NODES_PER_SEGMENT = 32
_N_BISECT = 40
_N_EXPAND = 24
_N_REFINE = 30
_N_SCAN = 32
_FLOOR = -80.0  # lowest relative log density kept (safe for float32 exp)


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
    # Fewer stars than a chunk: pad to the next power of two, so that inputs
    # of many sizes (the last chunk of each file in a bulk run) share a few
    # compilations.
    chunk_size = max(1, min(int(chunk_size), 1 << max(n - 1, 0).bit_length()))
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
    # Two compiled programs, not one: fused together, XLA computes the log
    # density at the nodes again inside each of its uses (2.5x the time).
    return _quantiles_from_nodes(
        *_log_density_at_nodes(plx, err, alpha, beta, length_scale), probs
    )


@jax.jit
def _log_density_at_nodes(plx, err, alpha, beta, length_scale):
    """Each star's mode, segment ends, and log density and slope at the nodes.

    The nodes of each of the ``n_seg`` segments are ``NODES_PER_SEGMENT + 1``
    evenly spaced points, both its ends included; shapes ``(n, 1)``,
    ``(n, n_seg + 1)`` and twice ``(n, n_seg, NODES_PER_SEGMENT + 1)``.
    """
    dtype = jnp.result_type(float)
    plx, err, alpha, beta, length_scale = (
        jnp.asarray(x, dtype)[:, None] for x in (plx, err, alpha, beta, length_scale)
    )
    star = _Star(plx, err, alpha, beta, jnp.log(length_scale))
    u_mode = star.mode()  # (n, 1)
    ends = star.segment_ends(u_mode)  # (n, n_seg + 1), relative to the mode
    nodes = _nodes(ends)
    logf, slope = star.relative_logp(
        u_mode, nodes.reshape(nodes.shape[0], -1), with_slope=True
    )
    return u_mode, ends, logf.reshape(nodes.shape), slope.reshape(nodes.shape)


def _nodes(ends):
    frac = jnp.arange(NODES_PER_SEGMENT + 1, dtype=ends.dtype) / NODES_PER_SEGMENT
    lo, hi = ends[:, :-1, None], ends[:, 1:, None]
    return lo + (hi - lo) * frac


@jax.jit
def _quantiles_from_nodes(u_mode, ends, logf, slope, probs):
    """Integrate each star's density over its segments and invert the CDF."""
    n_seg = ends.shape[1] - 1
    top = jnp.max(logf, axis=(1, 2), keepdims=True)
    logf = jnp.maximum(logf - top, _FLOOR)
    h = jnp.diff(ends, axis=1)[:, :, None] / NODES_PER_SEGMENT  # (n, n_seg, 1)
    f0 = jnp.exp(logf[..., :-1])
    rise = jnp.diff(logf, axis=-1)
    # Exact for log f linear on the interval, plus the first-order effect of
    # its curvature, estimated from the slopes at both ends.
    linear = h * f0 * _exprel(rise)
    curvature = jnp.diff(slope, axis=-1) * h
    mass = linear * jnp.clip(1.0 + 0.5 * curvature * _bow(rise), 0.5, 2.0)

    # The CDF in two levels (a running sum over a long axis is slow in XLA):
    # which segment holds each wanted probability, then which interval in it.
    seg_mass = jnp.sum(mass, axis=-1)  # (n, n_seg)
    seg_cdf = jnp.cumsum(seg_mass, axis=1)
    target = probs[None, :] * seg_cdf[:, -1:]  # (n, n_probs)
    seg = jnp.sum(seg_cdf[:, None, :] < target[:, :, None], axis=-1)
    seg = jnp.minimum(seg, n_seg - 1)  # (n, n_probs)
    before = jnp.take_along_axis(seg_cdf - seg_mass, seg, axis=1)

    def take_seg(a):  # (n, n_seg, m) -> (n, n_probs, m)
        return jnp.take_along_axis(a, seg[:, :, None], axis=1)

    inner = take_seg(mass)  # (n, n_probs, K)
    upper = jnp.triu(jnp.ones((NODES_PER_SEGMENT, NODES_PER_SEGMENT), mass.dtype))
    inner_cdf = before[:, :, None] + inner @ upper
    idx = jnp.sum(inner_cdf < target[:, :, None], axis=-1, keepdims=True)
    idx = jnp.minimum(idx, NODES_PER_SEGMENT - 1)  # (n, n_probs, 1)

    def take(a):  # (n, n_seg, K) -> (n, n_probs)
        return jnp.take_along_axis(take_seg(a), idx, axis=2)[..., 0]

    # Within the interval, invert the log-linear CDF h f0 (exp(rise t) - 1) / rise
    # at the wanted fraction of the interval's mass.
    m = take(mass)
    part = (target - (jnp.take_along_axis(inner_cdf, idx, axis=2)[..., 0] - m)) / m
    step = jnp.take_along_axis(h[..., 0], seg, axis=1)
    y = part * take(linear) / (step * take(f0))
    k = take(rise)
    safe = jnp.where(k == 0, 1.0, k)
    t = jnp.where(k == 0, y, jnp.log1p(jnp.maximum(k * y, -0.999999)) / safe)
    offset = take(_nodes(ends)[..., :-1]) + jnp.clip(t, 0.0, 1.0) * step
    return jnp.exp(u_mode + offset)


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
    """Log posterior of ``u = ln r`` and its landmarks, for a column of stars.

    Every parameter is an ``(n, 1)`` array so that it broadcasts against
    ``(n, k)`` arrays of trial points.
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
        steps = 2.0 ** jnp.arange(9, dtype=a.dtype)
        cand = jnp.minimum(a + steps, self.u_c)  # (n, 9)
        neg = self.dlogp(cand) < 0
        found = jnp.any(neg, axis=1, keepdims=True)
        k = jnp.argmax(neg, axis=1, keepdims=True)
        hi = jnp.take_along_axis(cand, k, 1)
        prev = jnp.take_along_axis(cand, jnp.maximum(k - 1, 0), 1)
        lo = jnp.where(found, jnp.where(k > 0, prev, a), self.u_c)
        hi = jnp.where(found, hi, self.u_c)

        def body(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            up = self.dlogp(mid) > 0
            return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

        lo, hi = jax.lax.fori_loop(0, _N_BISECT, body, (lo, hi))
        return 0.5 * (lo + hi)

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
        grid = scan_lo + step * jnp.arange(_N_SCAN, dtype=step.dtype)
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
            axis=1,
        )
        return jnp.sort(jnp.clip(points, left, end), axis=1)


def _scan_peak(grid, vals, step):
    """Peak of ``vals`` on an evenly spaced ``grid`` (rows = stars).

    The largest value, refined by a parabola through it and its neighbours
    (moved at most one ``step``).
    """
    k = jnp.clip(jnp.argmax(vals, axis=1, keepdims=True), 1, vals.shape[1] - 2)
    g_m, g_0, g_p = (jnp.take_along_axis(vals, k + j, 1) for j in (-1, 0, 1))
    denom = g_m - 2.0 * g_0 + g_p
    shift = jnp.where(
        denom < 0, 0.5 * (g_m - g_p) / jnp.where(denom < 0, denom, -1.0), 0.0
    )
    return jnp.take_along_axis(grid, k, 1) + step * jnp.clip(shift, -1.0, 1.0)


def _crossing(fn, scale, limit):
    """Smallest ``x >= 0`` (up to ``limit``) where ``fn(x)`` turns non-positive.

    ``fn`` maps an ``(n, k)`` array of offsets to values; it must be positive
    at 0 and decreasing up to ``limit``. Steps of ``scale * 2**k`` bracket the
    crossing and bisection refines it. Returns ``limit`` (or the last step)
    where ``fn`` stays positive.
    """
    steps = scale * 2.0 ** jnp.arange(_N_EXPAND, dtype=scale.dtype)
    dist = jnp.minimum(steps, limit)  # (n, K)
    neg = fn(dist) <= 0
    found = jnp.any(neg, axis=1, keepdims=True)
    k = jnp.argmax(neg, axis=1, keepdims=True)
    hi = jnp.take_along_axis(dist, k, 1)
    lo = jnp.where(k > 0, jnp.take_along_axis(dist, jnp.maximum(k - 1, 0), 1), 0.0)

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        pos = fn(mid) > 0
        return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _N_REFINE, body, (lo, hi))
    return jnp.where(found, hi, dist[:, -1:])
