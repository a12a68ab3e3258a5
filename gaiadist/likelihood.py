"""Marginal likelihood of a star's parallax under a population distance prior.

For a star with parallax ``plx`` and error ``err`` (mas, zero point removed)
and a prior ``p(u)`` on ``u = ln(r / pc)``, the marginal likelihood is

    I = ∫ Normal(plx | 1000 e^-u, err) p(u) du,

a smooth one-dimensional integral. The cluster model needs it for two priors,
a Gaussian in ``u`` (the cluster) and the EDSD prior with length scale ``L``
(the field), for thousands of stars at every step of a sampler, so it is
computed by a quadrature that adapts to each star and each prior:

- The log integrand ``h(u)`` is concave where ``1000 e^-u > plx / 2``, that
  is for ``u < u_c = ln(2000 / plx)`` (everywhere when ``plx <= 0``), because
  both priors are log-concave in ``u``. Its maximum there lies between the
  likelihood peak ``ln(1000 / plx)`` and the prior's mode, and bisection on
  ``h'`` finds it.
- Beyond ``u_c`` a second, broad bump can carry mass when the prior puts
  weight at distances the parallax barely excludes (low signal-to-noise,
  distant cluster or long length scale). A coarse scan of that region finds it.
- `log_marginal_likelihood` (the robust rule) integrates piecewise with
  Gauss-Legendre segments between these landmarks: the tails where the
  integrand has fallen by ``e^-TAIL``, the peak and its width, and the far
  bump. `log_marginal_likelihood_fast` (the sampler's rule) is adaptive
  Gauss-Hermite around the peak only; it is accurate where the integrand is
  unimodal, and `gaiadist.ClusterDistance` checks it against the robust rule
  at its posterior draws.

The nodes and weights are held fixed under differentiation, so the
gradient with respect to the population parameters is the quadrature of the
integrand's gradient, as NUTS needs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .posterior import _crossing, _scan_peak

__all__ = [
    "EDSDLogPrior",
    "GaussianLogPrior",
    "fast_nodes",
    "log_integrand",
    "log_marginal_likelihood",
    "log_marginal_likelihood_fast",
    "quadrature_nodes",
]

#: Gauss-Hermite nodes of the fast rule used inside the sampler.
HERMITE_NODES = 12
_N_NEWTON = 2
_GH_X, _GH_W = np.polynomial.hermite.hermgauss(HERMITE_NODES)
#: Gauss-Legendre nodes per segment of the robust rule (eight segments per star).
NODES_PER_SEGMENT = 16
TAIL = 30.0  # log-density drop from the peak at which the integration stops
CORE = 2.5  # half-width of the central segments, in local widths
_N_BISECT = 32
_N_SCAN = 24
_LN_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LN3 = math.log(3.0)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(NODES_PER_SEGMENT)


class GaussianLogPrior:
    """Gaussian prior on ``u = ln r``: the cluster component.

    Parameters
    ----------
    mean : array-like
        Mean of ``ln(r / pc)``, that is ``ln D``.
    sigma : array-like
        Standard deviation of ``ln r`` (positive).
    """

    def __init__(self, mean, sigma):
        self.mean = jnp.asarray(mean)
        self.sigma = jnp.asarray(sigma)

    @property
    def mode(self):
        """Mode of the density in ``u``."""
        return self.mean

    @property
    def width(self):
        """Width of the density's bulk in ``u`` (its curvature scale)."""
        return self.sigma

    @property
    def upper(self):
        """Offset from the mode at which the density has dropped by ``TAIL``."""
        return math.sqrt(2.0 * TAIL) * self.sigma

    def logpdf(self, u):
        """Log density of ``u``."""
        return self.logpdf_at(u - self.mean)

    def logpdf_at(self, d):
        """Log density at ``mode + d``."""
        z = d / self.sigma
        return -0.5 * z * z - jnp.log(self.sigma) - _LN_SQRT_2PI

    def slope_at(self, d):
        """First derivative of the log density at ``mode + d``."""
        return -d / (self.sigma * self.sigma)

    def curvature_at(self, d):
        """Second derivative of the log density at ``mode + d``."""
        return -1.0 / (self.sigma * self.sigma) + 0.0 * d

    def where_slope(self, s):
        """Offset from the mode at which the log density's slope is ``s``."""
        return -s * self.sigma * self.sigma


class EDSDLogPrior:
    """EDSD prior ``p(r) = r^2 e^(-r/L) / (2 L^3)`` expressed in ``u = ln r``.

    Parameters
    ----------
    log_length_scale : array-like
        ``ln(L / pc)``.
    """

    _UPPER = math.log(42.0)  # 3v - e^v falls ~30 below its peak at v = ln 42

    def __init__(self, log_length_scale):
        self.log_l = jnp.asarray(log_length_scale)

    @property
    def mode(self):
        """Mode of the density in ``u``."""
        return self.log_l + _LN3

    @property
    def width(self):
        """Width of the density's bulk in ``u`` (its curvature scale)."""
        return 1.0 / math.sqrt(3.0) + 0.0 * self.log_l

    @property
    def upper(self):
        """Offset from the mode at which the density has dropped by about ``TAIL``."""
        return self._UPPER - _LN3 + 0.0 * self.log_l

    def logpdf(self, u):
        """Log density of ``u``."""
        return self.logpdf_at(u - self.mode)

    def logpdf_at(self, d):
        """Log density at ``mode + d``."""
        return 3.0 * (d + _LN3) - 3.0 * jnp.exp(d) - math.log(2.0)

    def slope_at(self, d):
        """First derivative of the log density at ``mode + d``."""
        return 3.0 - 3.0 * jnp.exp(d)

    def curvature_at(self, d):
        """Second derivative of the log density at ``mode + d``."""
        return -3.0 * jnp.exp(d)

    def where_slope(self, s):
        """Offset from the mode at which the log density's slope is ``s``."""
        return jnp.log(3.0 - s) - _LN3


def log_marginal_likelihood(plx, err, prior):
    """``ln ∫ Normal(plx | 1000 e^-u, err) p(u) du`` for every star.

    Parameters
    ----------
    plx, err : array
        Parallaxes and their (positive) errors in mas, shape ``(n,)``.
    prior : `GaussianLogPrior` or `EDSDLogPrior`
        Prior on ``u = ln(r / pc)``, with parameters that are scalars or have
        shape ``(n,)``.

    Returns
    -------
    array
        Shape ``(n,)``; differentiable with respect to the prior's parameters.
    """
    offsets, log_weights = _offset_nodes(plx, err, prior)
    log_f = _log_integrand_at(plx[:, None], err[:, None], prior, offsets)
    return jax.scipy.special.logsumexp(log_f + log_weights, axis=1)


def log_marginal_likelihood_fast(plx, err, prior):
    """The same integral by adaptive Gauss-Hermite quadrature, for samplers.

    The rule (`fast_nodes`) is centred on the integrand's peak (a few Newton
    steps from the product of the prior and a Gaussian approximation of the
    likelihood) and scaled by its curvature there. It costs about a tenth of
    `log_marginal_likelihood` and agrees with it where the integrand is
    unimodal, which is the case near any sensible cluster solution;
    `gaiadist.ClusterDistance` checks the agreement at its posterior draws.
    """
    offsets, log_weights = fast_nodes(plx, err, prior)
    log_f = _log_integrand_at(plx[:, None], err[:, None], prior, offsets)
    return jax.scipy.special.logsumexp(log_f + log_weights, axis=1)


def _log_distance_integral(plx, err, prior):
    """``ln ∫ N(plx | 1000 / r, err) p(r) dr`` of each star, on fixed nodes.

    `log_marginal_likelihood_fast` with the nodes along the first axis and
    the stars along the second, so that the loops run along the stars (the
    layout of the astrometric model and of the field-alone fit).
    """
    offsets, log_weights = (a.T for a in fast_nodes(plx, err, prior))
    h = log_weights + _log_integrand_at(plx[None], err[None], prior, offsets)
    return jax.nn.logsumexp(h, axis=0)


def fast_nodes(plx, err, prior):
    """Nodes and log weights of each star's Gauss-Hermite rule.

    The nodes are offsets from the prior's mode (so that a cluster narrower
    than the float32 spacing of ``ln r`` stays resolved) and the log weights
    include the Gaussian factor the rule divides out, so that the integral
    is ``sum(exp(log_integrand(mode + offsets) + log_weights))``. Shape
    ``(n, HERMITE_NODES)`` each; held fixed under differentiation.
    """
    fixed = _with_axes(prior, 1, jax.lax.stop_gradient)
    mode = fixed.mode
    inv_var = 1.0 / (err * err)
    pos = plx > 0
    v_like = jnp.log(1000.0 / jnp.where(pos, plx, 1.0)) - mode
    c_like = jnp.where(pos, plx * plx * inv_var, 0.0)
    c_prior = -fixed.curvature_at(0.0 * mode)
    v = jnp.where(pos, v_like, 0.0) * c_like / (c_prior + c_like)
    limit = 3.0 / jnp.sqrt(c_prior + c_like)

    def slope_curv(v):
        d1, d2 = _log_likelihood_derivatives(plx, err, mode + v)
        return d1 + fixed.slope_at(v), d2 + fixed.curvature_at(v)

    for _ in range(_N_NEWTON):
        d1, d2 = slope_curv(v)
        step = jnp.where(
            d2 < 0, -d1 / jnp.where(d2 < 0, d2, -1.0), jnp.sign(d1) * limit
        )
        v = v + jnp.clip(step, -limit, limit)
    _, d2 = slope_curv(v)
    # Never wider than the prior: where the Newton steps end near an
    # inflection (a low signal-to-noise star whose integrand has a second,
    # prior-shaped bump beyond the likelihood's) the curvature width would
    # be huge, and a rule that wide misses both bumps.
    width = jnp.minimum(1.0 / jnp.sqrt(jnp.maximum(-d2, 1e-20)), fixed.width)
    v, width = jax.lax.stop_gradient(v), jax.lax.stop_gradient(width)
    x = jnp.asarray(_GH_X, v.dtype)
    offsets = v[:, None] + math.sqrt(2.0) * width[:, None] * x
    log_weights = (jnp.asarray(np.log(_GH_W), v.dtype) + x * x) + jnp.log(
        math.sqrt(2.0) * width[:, None]
    )
    return offsets, log_weights


def quadrature_nodes(plx, err, prior):
    """Nodes in ``u`` and log weights of each star's quadrature rule.

    Piecewise Gauss-Legendre between landmarks of the integrand: the tails
    where it has fallen by ``TAIL`` from its peak, the peak and its width, and
    the far bump when there is one. Shape ``(n, n_nodes)`` each; held fixed
    under differentiation.
    """
    offsets, log_weights = _offset_nodes(plx, err, prior)
    mode = _with_axes(prior, 2, jax.lax.stop_gradient).mode
    return mode + offsets, log_weights


def log_integrand(plx, err, prior, u):
    """``ln Normal(plx | 1000 e^-u, err) + ln p(u)``; ``u`` has the star axis first."""
    return _log_likelihood(plx, err, u) + _with_axes(prior, u.ndim).logpdf(u)


def _log_likelihood(plx, err, u):
    """``ln Normal(plx | 1000 e^-u, err)``."""
    z = (plx - 1000.0 * jnp.exp(-u)) / err
    return -0.5 * z * z - jnp.log(err) - _LN_SQRT_2PI


def _log_likelihood_derivatives(plx, err, u, order=2):
    """The first ``order`` derivatives of `_log_likelihood` with respect to ``u``.

    With ``w = 1000 e^-u`` the ``k``-th derivative is
    ``(-1)^(k+1) w (2^(k-1) w - plx) / err^2``.
    """
    w = 1000.0 * jnp.exp(-u)
    w_over_var = w / (err * err)
    return tuple(
        (-1) ** (k + 1) * w_over_var * (2.0 ** (k - 1) * w - plx)
        for k in range(1, order + 1)
    )


def _log_integrand_at(plx, err, prior, offsets):
    """`log_integrand` at ``u = mode + offsets``, ``offsets`` held fixed.

    The nodes stay fixed in ``u`` under differentiation, as in
    `log_integrand`: the prior is evaluated at ``offsets - (mode - mode₀)``,
    ``mode₀`` the mode without its gradient, which is ``offsets`` in value
    and carries the derivative of the prior's position.
    """
    prior = _with_axes(prior, offsets.ndim)
    mode = prior.mode
    fixed = jax.lax.stop_gradient(mode)
    return _log_likelihood(plx, err, fixed + offsets) + prior.logpdf_at(
        offsets - (mode - fixed)
    )


def _offset_nodes(plx, err, prior):
    """The robust rule's nodes as offsets from the prior's mode, and log weights."""
    plx = jax.lax.stop_gradient(plx)
    err = jax.lax.stop_gradient(err)
    prior = _with_axes(prior, 1, jax.lax.stop_gradient)
    ends = _segment_ends(plx, err, prior)  # (n, S + 1)
    x = jnp.asarray(_GL_X, ends.dtype)
    logw = jnp.asarray(np.log(_GL_W), ends.dtype)
    lo, hi = ends[:, :-1, None], ends[:, 1:, None]
    half = 0.5 * (hi - lo)
    nodes = (lo + half * (1.0 + x)).reshape(ends.shape[0], -1)
    log_weights = (jnp.log(jnp.maximum(half, 1e-30)) + logw).reshape(ends.shape[0], -1)
    return jax.lax.stop_gradient(nodes), jax.lax.stop_gradient(log_weights)


def _expand(param, ndim):
    """Give a per-star parameter of shape (n,) trailing axes to match ``ndim``."""
    param = jnp.asarray(param)
    return (
        param.reshape(param.shape + (1,) * (ndim - param.ndim)) if param.ndim else param
    )


def _with_axes(prior, ndim, fn=None):
    """The prior with per-star parameters reshaped to broadcast against ``ndim``."""

    def prep(x):
        x = _expand(x, ndim)
        return fn(x) if fn is not None else x

    if isinstance(prior, GaussianLogPrior):
        return GaussianLogPrior(prep(prior.mean), prep(prior.sigma))
    return EDSDLogPrior(prep(prior.log_l))


def _segment_ends(plx, err, prior):
    """Sorted segment ends covering each star's integrand, shape (n, 9).

    Everything is an offset ``v = u - mode`` from the prior's mode.
    """
    dtype = jnp.result_type(plx, float)
    n = plx.shape[0]

    def full(a):
        return jnp.broadcast_to(jnp.asarray(a, dtype), (n, 1))

    plx, err = plx[:, None], err[:, None]
    prior = _with_axes(prior, 2)
    m = full(prior.mode)
    inv_var = 1.0 / (err * err)
    pos = plx > 0
    safe_plx = jnp.where(pos, plx, 1.0)
    v_like = jnp.log(1000.0 / safe_plx) - m
    big = jnp.asarray(1e4, dtype)
    v_c = jnp.where(pos, jnp.log(2000.0 / safe_plx) - m, big)

    def like_slope(v):
        return _log_likelihood_derivatives(plx, err, m + v)[0]

    def curvature(v):
        return _log_likelihood_derivatives(plx, err, m + v)[1] + prior.curvature_at(v)

    def h(v):
        return _log_integrand_at(plx, err, prior, v)

    # The likelihood's convexity beyond u_c is at most plx^2 / (8 err^2); a
    # prior at least that curved there makes the integrand concave everywhere.
    concave = ~pos | (-prior.curvature_at(v_c) >= 0.125 * plx * plx * inv_var)
    limit = jnp.where(concave, big, v_c)

    # Peak: both slope terms are positive below min(u_like, prior mode) and,
    # for plx > 0, negative above max(u_like, prior mode). For plx <= 0 the
    # likelihood slope is positive and falls with u, so beyond where the
    # prior's slope is -like_slope(prior mode) the total is negative.
    zero = jnp.zeros_like(v_like)
    lo = jnp.where(pos, jnp.minimum(v_like, 0.0), zero)
    hi_neg = full(prior.where_slope(-like_slope(zero)))
    hi = jnp.where(pos, jnp.maximum(v_like, 0.0), jnp.maximum(hi_neg, 0.0))
    hi = jnp.minimum(hi, limit)
    lo = jnp.minimum(lo, hi)

    def body(_, bracket):
        a, b = bracket
        mid = 0.5 * (a + b)
        up = like_slope(mid) + prior.slope_at(mid) > 0
        return jnp.where(up, mid, a), jnp.where(up, b, mid)

    lo, hi = jax.lax.fori_loop(0, _N_BISECT, body, (lo, hi))
    mode = 0.5 * (lo + hi)
    h_mode = h(mode)
    width = 1.0 / jnp.sqrt(jnp.maximum(-curvature(mode), 1e-20))

    def inside(delta):  # > 0 inside the TAIL contour around the peak
        return h(mode + delta) - h_mode + TAIL

    left = -_crossing(lambda x: inside(-x), width, jnp.inf, axis=1)
    right = _crossing(inside, width, limit - mode, axis=1)

    # Far region: where the prior's bulk reaches beyond u_c, scan it for a
    # second bump and integrate it up to the prior's own tail.
    top = full(prior.upper)
    has_far = ~concave & (top > v_c)
    start = jnp.where(has_far, v_c, mode)
    step = jnp.where(has_far, (top - v_c) / (_N_SCAN - 1), width)
    grid = start + step * jnp.arange(_N_SCAN, dtype=dtype)
    vals = h(grid)
    far = _scan_peak(grid, vals, step, axis=1)
    curv_far = curvature(far)
    w_far = jnp.where(
        curv_far < 0, 1.0 / jnp.sqrt(jnp.where(curv_far < 0, -curv_far, 1.0)), step
    )
    w_far = jnp.clip(w_far, 0.25 * step, full(prior.width))
    end = jnp.where(has_far, jnp.maximum(mode + right, top), mode + right)
    far = jnp.where(has_far, far, mode)
    w_far = jnp.where(has_far, w_far, width)

    points = jnp.concatenate(
        [
            mode + left,
            mode - CORE * width,
            mode,
            mode + CORE * width,
            mode + right,
            far - CORE * w_far,
            far,
            far + CORE * w_far,
            end,
        ],
        axis=1,
    )
    return jnp.sort(jnp.clip(points, mode + left, end), axis=1)
