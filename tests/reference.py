"""Independent reference values for the tests, computed the slow, obvious way."""

import math

import numpy as np

SIGMA_PROBS = (
    0.5 * math.erfc(1 / math.sqrt(2)),
    0.5,
    1 - 0.5 * math.erfc(1 / math.sqrt(2)),
)


def brute_force_quantiles(plx, err, alpha, beta, length_scale, probs=SIGMA_PROBS):
    """Posterior distance quantiles from a dense float64 grid in ln r.

    A first pass over 0.1 pc to 1e9 pc finds where the posterior lives (within
    exp(-40) of its peak); a second, equally dense pass over that range gives
    the CDF by the trapezoid rule, inverted by linear interpolation.
    """
    log_l = np.log(length_scale)

    def logp(u):
        return (
            (beta + 1) * u
            - np.exp(alpha * (u - log_l))
            - 0.5 * ((plx - 1000 * np.exp(-u)) / err) ** 2
        )

    u = np.linspace(np.log(0.1), np.log(1e9), 400_001)
    g = logp(u)
    keep = np.nonzero(g > g.max() - 40)[0]
    step = u[1] - u[0]
    u = np.linspace(u[keep[0]] - step, u[keep[-1]] + step, 400_001)
    g = logp(u)
    f = np.exp(g - g.max())
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(u))])
    return np.exp(np.interp(probs, cdf / cdf[-1], u))


def brute_force_log_marginal(plx, err, prior, a, b=None):
    """ln ∫ Normal(plx | 1000 e^-u, err) p(u) du on a dense float64 grid.

    ``prior`` is ``"cluster"`` (Gaussian in u = ln r with mean ``a`` and width
    ``b``) or ``"field"`` (EDSD with ln L = ``a``). The cluster's integral is
    taken over t = (u - a) / b, so that however narrow the cluster, the grid
    resolves it. A first pass finds where the integrand is within exp(-45) of
    its peak, over u in [-30, 250] (1e-13 pc to e^250 pc) and, for the
    cluster, also over t in [-50, 50]; a second pass of 200,001 points there
    integrates it by the trapezoid rule.
    """

    def like(u):
        w = 1000 * np.exp(-u)
        return -0.5 * ((plx - w) / err) ** 2 - np.log(err) - 0.5 * np.log(2 * np.pi)

    grids = [np.linspace(-30, 250, 2_000_001)]
    if prior == "cluster":

        def log_f(t):
            return like(a + b * t) - 0.5 * t * t - 0.5 * np.log(2 * np.pi)

        grids = [(grids[0] - a) / b, np.linspace(-50, 50, 1_000_001)]
    else:

        def log_f(u):
            return like(u) + 3 * (u - a) - np.exp(u - a) - np.log(2)

    values = [log_f(x) for x in grids]
    top = max(g.max() for g in values)
    ends = []
    for x, g in zip(grids, values, strict=True):
        keep = np.nonzero(g > top - 45)[0]
        if keep.size:
            ends += [x[max(keep[0] - 1, 0)], x[min(keep[-1] + 1, x.size - 1)]]
    x = np.linspace(min(ends), max(ends), 200_001)
    g = log_f(x)
    top = g.max()
    return top + np.log(np.trapezoid(np.exp(g - top), x))


def brute_force_mixture(plx, err, draws, probs=SIGMA_PROBS):
    """Membership and distance quantiles of one star under the cluster model.

    ``draws`` has one row ``(ln L, ln D, ln sigma, Q)`` per posterior draw.
    For each draw the two components' integrands (parallax likelihood times
    the cluster's Gaussian in u = ln r, or the EDSD prior) are taken on one
    dense float64 grid over 1 pc to 1e7 pc; the membership is Q I_c / (Q I_c
    + (1 - Q) I_f) averaged over the draws, and the quantiles invert the
    average of the draws' normalised posteriors' CDFs (trapezoid rule).
    """
    u = np.linspace(0.0, np.log(1e7), 300_001)
    like = -0.5 * ((plx - 1000 * np.exp(-u)) / err) ** 2
    p_member, cdf = 0.0, np.zeros_like(u)
    for log_l, log_d, log_sigma, q in draws:
        t = (u - log_d) / np.exp(log_sigma)
        cluster = q * np.exp(like - 0.5 * t * t - log_sigma) / math.sqrt(2 * math.pi)
        field = (1 - q) * np.exp(like + 3 * (u - log_l) - np.exp(u - log_l)) / 2
        i_c, i_f = np.trapezoid(cluster, u), np.trapezoid(field, u)
        p_member += i_c / (i_c + i_f) / len(draws)
        f = cluster + field
        part = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(u))])
        cdf += part / part[-1]
    return p_member, np.exp(np.interp(probs, cdf / cdf[-1], u))
