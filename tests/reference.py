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
    ``b``) or ``"field"`` (EDSD with ln L = ``a``). A first pass over
    u in [-30, 250] (1e-13 pc to e^250 pc) finds where the integrand is within
    exp(-45) of its peak; a second pass of 200,001 points there integrates it
    by the trapezoid rule.
    """

    def log_f(u):
        w = 1000 * np.exp(-u)
        like = -0.5 * ((plx - w) / err) ** 2 - np.log(err) - 0.5 * np.log(2 * np.pi)
        if prior == "cluster":
            return like - 0.5 * ((u - a) / b) ** 2 - np.log(b) - 0.5 * np.log(2 * np.pi)
        return like + 3 * (u - a) - np.exp(u - a) - np.log(2)

    u = np.linspace(-30, 250, 2_000_001)
    g = log_f(u)
    keep = np.nonzero(g > g.max() - 45)[0]
    step = u[1] - u[0]
    u = np.linspace(u[keep[0]] - step, u[keep[-1]] + step, 200_001)
    g = log_f(u)
    top = g.max()
    return top + np.log(np.trapezoid(np.exp(g - top), u))
