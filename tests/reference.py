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


def brute_force_quantiles_many(
    plx, err, alpha, beta, length_scale, probs=SIGMA_PROBS, points=10_001, chunk=256
):
    """`brute_force_quantiles` for many stars at once, each with its own prior.

    The same two passes in float64, vectorised over stars: ``4 * points``
    over ln r from 0.1 pc to 1e9 pc (spacing 6e-4, 0.6 of the narrowest
    posterior's width at parallax / error = 1000), then ``points`` over the
    range where the log density is within 40 of its peak, widened by one step
    of the first grid on each side. Trapezoid CDF, linear inversion. With
    twice the points, the quantiles of the tests change by less than 1e-6.
    """
    args = np.broadcast_arrays(
        *(np.asarray(x, float) for x in (plx, err, alpha, beta, length_scale))
    )
    out = np.empty((args[0].size, len(probs)))
    for start in range(0, out.shape[0], chunk):
        p, e, a, b, log_l = (x[start : start + chunk, None] for x in args)
        log_l = np.log(log_l)

        def logp(u, p=p, e=e, a=a, b=b, log_l=log_l):
            return (
                (b + 1) * u
                - np.exp(a * (u - log_l))
                - 0.5 * ((p - 1000 * np.exp(-u)) / e) ** 2
            )

        u = np.linspace(np.log(0.1), np.log(1e9), 4 * points)[None, :]
        g = logp(u)
        inside = g > g.max(axis=1, keepdims=True) - 40
        step = u[0, 1] - u[0, 0]
        first = u[0, np.argmax(inside, axis=1)] - step
        last = u[0, u.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)] + step
        u = first[:, None] + (last - first)[:, None] * np.linspace(0, 1, points)
        g = logp(u)
        f = np.exp(g - g.max(axis=1, keepdims=True))
        cdf = np.concatenate(
            [
                np.zeros((f.shape[0], 1)),
                np.cumsum(0.5 * (f[:, 1:] + f[:, :-1]) * np.diff(u), axis=1),
            ],
            axis=1,
        )
        for i in range(f.shape[0]):
            out[start + i] = np.exp(np.interp(probs, cdf[i] / cdf[i, -1], u[i]))
    return out


def brute_force_log_marginal(plx, err, prior, a, b=None):
    """ln ∫ Normal(plx | 1000 e^-u, err) p(u) du on a dense float64 grid.

    ``prior`` is ``"cluster"`` (Gaussian in u = ln r with mean ``a`` and width
    ``b``) or ``"field"`` (EDSD with ln L = ``a``); see `_integrand_grid`.
    """
    x, g = _integrand_grid(plx, err, prior, a, b)
    top = g.max()
    return top + np.log(np.trapezoid(np.exp(g - top), x))


def brute_force_mixture(plx, err, draws, probs=SIGMA_PROBS):
    """Membership and distance quantiles of one star under the cluster model.

    ``draws`` has one row ``(ln L, ln D, ln sigma, Q)`` per posterior draw.
    For each draw both components' integrands are taken on their own dense
    grids (`_integrand_grid`, the cluster's in units of its width, so that
    the narrowest cluster is resolved), integrated by the trapezoid rule into
    the component's mass and CDF. The membership is Q I_c / (Q I_c + (1 - Q)
    I_f) averaged over the draws, and the quantiles are found by bisection
    in ln r on the average over the draws of each draw's normalised mixture
    CDF, the components' CDFs linearly interpolated on their grids. That CDF,
    a function of ln r, is returned too.
    """
    parts, p_member = [], 0.0
    for log_l, log_d, log_sigma, q in draws:
        comps = []
        # The cluster's grid is in t = (u - ln D) / sigma, the field's in u.
        for prior, a, b, weight, shift, scale in (
            ("cluster", log_d, np.exp(log_sigma), q, log_d, np.exp(log_sigma)),
            ("field", log_l, None, 1 - q, 0.0, 1.0),
        ):
            x, g = _integrand_grid(plx, err, prior, a, b, first=200_001)
            f = np.exp(g - g.max())
            cdf = np.concatenate(
                [[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(x))]
            )
            log_mass = np.log(weight) + g.max() + np.log(cdf[-1])
            comps.append((log_mass, x, cdf / cdf[-1], shift, scale))
        top = max(c[0] for c in comps)
        masses = [np.exp(c[0] - top) for c in comps]
        p_member += masses[0] / sum(masses) / len(draws)
        parts += [
            (m / sum(masses) / len(draws),) + c[1:]
            for m, c in zip(masses, comps, strict=True)
        ]

    def cdf_at(u):
        return sum(
            mass * np.interp((u - shift) / scale, x, cdf)
            for mass, x, cdf, shift, scale in parts
        )

    quantiles = []
    for prob in probs:
        lo, hi = 0.0, np.log(1e7)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if cdf_at(mid) < prob else (lo, mid)
        quantiles.append(np.exp(0.5 * (lo + hi)))
    return p_member, np.array(quantiles), cdf_at


def _integrand_grid(plx, err, prior, a, b=None, first=2_000_001):
    """A dense float64 grid over the integrand of `brute_force_log_marginal`.

    Returns the grid and the log integrand on it. The cluster's grid is in
    t = (u - a) / b, so that however narrow the cluster, it is resolved (the
    integrand in t is the likelihood times a standard normal). A first pass
    finds where the integrand is within exp(-45) of its peak, over u in
    [-30, 250] (1e-13 pc to e^250 pc; ``first`` points) and, for the
    cluster, also over t in [-50, 50]; the second pass puts 200,001 points
    there.
    """

    def like(u):
        w = 1000 * np.exp(-u)
        return -0.5 * ((plx - w) / err) ** 2 - np.log(err) - 0.5 * np.log(2 * np.pi)

    grids = [np.linspace(-30, 250, first)]
    if prior == "cluster":

        def log_f(t):
            return like(a + b * t) - 0.5 * t * t - 0.5 * np.log(2 * np.pi)

        grids = [(grids[0] - a) / b, np.linspace(-50, 50, first // 2)]
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
    return x, log_f(x)
