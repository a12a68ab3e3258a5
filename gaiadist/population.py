"""The marginal method's target: the log posterior of the population parameters.

With every star's distance integrated out by the fast Gauss-Hermite rule
(`gaiadist.likelihood.fast_nodes`), each star's likelihood is a weighted sum
over the nodes of both components,

    p(plx_n | theta) = sum_j exp(h_nj(theta)),

with the nodes held fixed, and ``h_nj`` the log of the likelihood at node
``j`` plus the component's log prior density there and the log of its
mixture weight (``ln Q`` or ``ln(1 - Q)``). The derivatives of such a sum are
moments under the node weights ``a_nj = exp(h_nj) / p(plx_n | theta)``:

    d ln p / d theta = E_a[g],   g = dh / d theta,
    d^2 ln p / d theta^2 = E_a[dg / d theta] + Cov_a[g],

and ``g`` and ``dg / d theta`` are short closed forms for the Gaussian
cluster and the EDSD field. `log_density_terms` computes them in the same
pass as the value, which is about half the work of automatic
differentiation and compiles to a program a fraction of the size;
`log_density` is the value with that gradient attached (a
`jax.custom_jvp`), as NUTS needs it, and the mode search uses the Hessian.

A parallax cut that made the sample (`gaiadist.selection`) adds one more
term, each star's ``-ln(Q P_cluster + (1 - Q) P_field)``, whose derivatives
are automatic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from .likelihood import (
    EDSDLogPrior,
    GaussianLogPrior,
    _log_distance_integral,
    _log_likelihood,
    fast_nodes,
)
from .selection import ParallaxCut, log_selected_fraction, mixture_log_selected

__all__ = [
    "POPULATION",
    "constrain",
    "field_log_likelihood",
    "log_density",
    "log_density_terms",
    "log_likelihood_terms",
    "selection_log_likelihood",
    "transforms",
]

#: The population parameters, in the order of the unconstrained vector ``x``.
POPULATION = ("log_L", "log_D", "log_sigma", "Q")


def transforms(priors) -> list:
    """The maps from the unconstrained ``x`` to the parameters (`POPULATION`)."""
    return [dist.biject_to(priors[k].support) for k in POPULATION]


def constrain(x, priors):
    """The `POPULATION` parameters from unconstrained ``x``, shape (..., 4)."""
    return jnp.stack([t(x[..., i]) for i, t in enumerate(transforms(priors))], axis=-1)


def log_likelihood_terms(theta, plx, err, weight, order: int = 0, cut=None):
    """``sum_n weight_n ln p(plx_n | theta)`` and its first ``order`` derivatives.

    Parameters
    ----------
    theta : array
        ``(log_L, log_D, log_sigma, Q)``, shape ``(4,)``.
    plx, err, weight : array
        Parallaxes and errors (mas) and the stars' weights (1 for a star, 0
        for padding), shape ``(n,)``.
    order : {0, 1, 2}
        How many derivatives with respect to ``theta`` to return.
    cut : `~gaiadist.selection.ParallaxCut`, optional
        The parallax cut that made the sample: each star's likelihood is
        then divided by the fraction of the mixture the cut keeps
        (`selection_log_likelihood`).

    Returns
    -------
    tuple
        The value, then for ``order >= 1`` the gradient (shape ``(4,)``)
        and for ``order == 2`` the Hessian (shape ``(4, 4)``). The
        quadrature nodes are held fixed, as in
        `gaiadist.likelihood.log_marginal_likelihood_fast`.
    """
    terms = _mixture_terms(theta, plx, err, weight, order)
    if cut is None:
        return terms

    def selection(t):
        return selection_log_likelihood(t, weight, cut)

    if order == 0:
        extra = [selection(theta)]
    else:
        extra = list(jax.value_and_grad(selection)(theta))
    if order == 2:
        extra.append(jax.hessian(selection)(theta))
    return tuple(a + b for a, b in zip(terms, extra, strict=True))


def selection_log_likelihood(theta, weight, cut: ParallaxCut):
    """``-sum_n weight_n ln(Q P_cluster,n + (1 - Q) P_field,n)`` for the cut.

    ``P`` is the fraction of each component that the parallax cut keeps, at
    the star's parallax error and zero point
    (`gaiadist.selection.log_selected_fraction`).
    """
    log_l, log_d, log_sigma, q = theta
    cluster = GaussianLogPrior(log_d, jnp.exp(log_sigma))
    return mixture_log_selected(q, cluster, EDSDLogPrior(log_l), [(cut, weight)])


def field_log_likelihood(log_l, plx, err, weight, cut=None):
    """``sum_n weight_n ln p(plx_n | L)`` with every star a field star.

    The EDSD field alone, length scale ``exp(log_l)`` (scalar), each star's
    distance integrated out by the sampler's rule, and the kept fraction of
    ``cut`` divided out when given: the model without a cluster against
    which `gaiadist.ClusterDistance` tests for one.
    """
    field = EDSDLogPrior(log_l)
    per_star = _log_distance_integral(plx, err, field)
    if cut is not None:
        per_star = per_star - log_selected_fraction(field, cut)
    return jnp.sum(weight * per_star)


def _mixture_terms(theta, plx, err, weight, order):
    """`log_likelihood_terms` without a cut: the closed forms."""
    log_l, log_d, log_sigma, q = theta
    sigma = jnp.exp(log_sigma)
    cluster, field = GaussianLogPrior(log_d, sigma), EDSDLogPrior(log_l)
    # Offsets from ln D and from ln L + ln 3, the nodes along the first axis
    # and the stars along the second: the loops then run along the stars,
    # which a CPU vectorises better than each star's 12 nodes (the sampler
    # runs a quarter faster).
    o_c, lw_c = (a.T for a in fast_nodes(plx, err, cluster))
    o_f, lw_f = (a.T for a in fast_nodes(plx, err, field))
    plx2, err2 = plx[None, :], err[None, :]
    h_c = (
        jnp.log(q)
        + lw_c
        + _log_likelihood(plx2, err2, log_d + o_c)
        + cluster.logpdf_at(o_c)
    )
    h_f = (
        jnp.log1p(-q)
        + lw_f
        + _log_likelihood(plx2, err2, field.mode + o_f)
        + field.logpdf_at(o_f)
    )
    # The log-sum-exp over both components' nodes, keeping the node weights.
    top = jax.lax.stop_gradient(
        jnp.maximum(jnp.max(h_c, axis=0), jnp.max(h_f, axis=0))
    )[None, :]
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    e_c, e_f = jnp.exp(h_c - top), jnp.exp(h_f - top)
    total = jnp.sum(e_c, axis=0) + jnp.sum(e_f, axis=0)
    per_star = top[0] + jnp.log(total)
    value = jnp.sum(weight * per_star)
    if order == 0:
        return (value,)
    # The node weights, and g at each node: for the cluster's nodes
    # (0, z / sigma, z^2 - 1, 1 / Q) with z = (u - ln D) / sigma, for the
    # field's (u = ln L + ln 3 + o, e = exp(u - ln L) = 3 e^o)
    # (e - 3, 0, 0, -1 / (1 - Q)). Written entry by entry, so that every
    # sum over the nodes is one fused loop.
    a = e_c / total[None, :]
    b = e_f / total[None, :]
    z = o_c / sigma
    e = 3.0 * jnp.exp(o_f)
    g_c = (0.0, z / sigma, z * z - 1.0, 1.0 / q)
    g_f = (e - 3.0, 0.0, 0.0, -1.0 / (1.0 - q))
    member = jnp.sum(a, axis=0)
    outside = 1.0 - member
    mean = [
        _moment(a, g, member) + _moment(b, h, outside)
        for g, h in zip(g_c, g_f, strict=True)
    ]
    grad = jnp.stack([jnp.sum(weight * m) for m in mean])
    if order == 1:
        return value, grad
    # Cov_a[g], centred on each star's mean, and E_a[dg / dtheta], whose
    # only entries are (ln D, ln D) -1 / sigma^2, (ln D, ln sigma)
    # -2 z / sigma, (ln sigma, ln sigma) -2 z^2, (ln L, ln L) -e and
    # (Q, Q) -1 / Q^2 or -1 / (1 - Q)^2.
    d_c = [g - m[None, :] for g, m in zip(g_c, mean, strict=True)]
    d_f = [h - m[None, :] for h, m in zip(g_f, mean, strict=True)]
    wa, wb = weight[None, :] * a, weight[None, :] * b
    w_member = weight @ member
    curvature = {
        (0, 0): -jnp.sum(wb * e),
        (1, 1): -w_member / (sigma * sigma),
        (1, 2): -2.0 * jnp.sum(wa * z) / sigma,
        (2, 2): -2.0 * jnp.sum(wa * z * z),
        (3, 3): -w_member / (q * q) - (weight @ outside) / ((1.0 - q) * (1.0 - q)),
    }
    rows = [[None] * 4 for _ in range(4)]
    for i in range(4):
        for j in range(i, 4):
            entry = (
                jnp.sum(wa * d_c[i] * d_c[j])
                + jnp.sum(wb * d_f[i] * d_f[j])
                + curvature.get((i, j), 0.0)
            )
            rows[i][j] = rows[j][i] = entry
    return value, grad, jnp.stack([jnp.stack(row) for row in rows])


def _moment(weights, g, total):
    """Each star's ``sum_j weights_j g_j``; ``total`` is the weights' sum."""
    if jnp.ndim(g) == 0:
        return g * total
    return jnp.sum(weights * g, axis=0)


def log_density_terms(x, plx, err, weight, priors, order: int = 0, cut=None):
    """Log posterior (up to a constant) of the unconstrained ``x``, with derivatives.

    ``x`` maps to the parameters through `transforms` (each parameter its
    own bijection), so the likelihood's derivatives carry over by the chain
    rule with a diagonal Jacobian; the priors and the Jacobian's log
    determinant, four scalar terms, are differentiated automatically.
    Returns a tuple as `log_likelihood_terms` does, in ``x``; ``cut`` as
    there.
    """
    maps = transforms(priors)

    def scalar_terms(x):
        total = 0.0
        for k, transform, xk in zip(POPULATION, maps, x, strict=True):
            value = transform(xk)
            total = (
                total
                + priors[k].log_prob(value)
                + transform.log_abs_det_jacobian(xk, value)
            )
        return total

    terms = log_likelihood_terms(constrain(x, priors), plx, err, weight, order, cut)
    value = scalar_terms(x) + terms[0]
    if order == 0:
        return (value,)
    slope = jnp.stack([jax.grad(t)(xk) for t, xk in zip(maps, x, strict=True)])
    grad = jax.grad(scalar_terms)(x) + slope * terms[1]
    if order == 1:
        return value, grad
    bend = jnp.stack([jax.grad(jax.grad(t))(xk) for t, xk in zip(maps, x, strict=True)])
    hessian = (
        jax.hessian(scalar_terms)(x)
        + slope[:, None] * terms[2] * slope[None, :]
        + jnp.diag(bend * terms[1])
    )
    return value, grad, hessian


def log_density(x, plx, err, weight, priors, cut=None):
    """Log posterior (up to a constant) of the unconstrained parameters ``x``.

    ``weight`` is 1 for a star and 0 for padding; ``cut`` the parallax cut
    that made the sample, if any. Differentiable with respect to ``x`` only
    (by `log_density_terms`'s closed forms): the stars are data.
    """

    @jax.custom_jvp
    def value(x):
        return log_density_terms(x, plx, err, weight, priors, cut=cut)[0]

    @value.defjvp
    def value_jvp(primals, tangents):
        out, grad = log_density_terms(
            primals[0], plx, err, weight, priors, order=1, cut=cut
        )
        return out, grad @ tangents[0]

    return value(x)
