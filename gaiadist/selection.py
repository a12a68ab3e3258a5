"""The parallax cut that made a sample, as a term of the cluster likelihood.

A sample cut to ``lo < parallax < hi`` holds each population in proportion
to the fraction of it that the cut keeps. For a star with parallax error
``err`` and zero-point shift ``z`` (the catalogue's parallax minus the one
fitted), that fraction is, for a component with distance density ``p(u)``
(``u = ln(r / pc)``),

    P(err, z) = ∫ p(u) [Φ((hi - z - ϖ(u)) / err) - Φ((lo - z - ϖ(u)) / err)] du,

with ``ϖ(u) = 1000 e^-u`` mas. The likelihood of a selected star is then the
mixture's density divided by ``Q P_cluster + (1 - Q) P_field``, so that
``Q`` and ``L`` describe the populations before the cut (the densities
themselves need no change: the cut keeps every star it lets in).

``P`` depends on the star only through ``err`` and ``z``, smoothly, so it is
computed on a small grid of both (Chebyshev nodes in ``ln err``, and in
``z`` where the zero point varies) by Gauss-Legendre quadrature in ``u``
with segment ends at the cut's edges, and interpolated to every star with
weights computed once per fit. For the cluster, whose density may be
narrower than anything fixed in advance, the nodes follow ``D`` and its
width: a few thousand integrand evaluations per evaluation of the
posterior, whatever the number of stars. The field's EDSD is broad, so its
nodes are fixed (over ``ln r`` from -8 to 16, which holds the density for
any ``L`` from 3 pc to 100 kpc) and the cut's factor at each node computed
once per fit: its ``P`` costs one density per node and a matrix product.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from .likelihood import GaussianLogPrior

__all__ = [
    "ParallaxCut",
    "log_selected_fraction",
    "mixture_log_selected",
    "pad_cut",
    "parallax_cut",
    "selected_fraction_grid",
]

#: Chebyshev nodes in ``ln err`` and in the zero-point shift.
N_ERR_NODES = 16
N_SHIFT_NODES = 3
#: Gauss-Legendre nodes per segment of the integral in ``u``.
NODES_PER_SEGMENT = 12
#: Half-width of each edge of the cut, in parallax errors.
_EDGE = 6.0
#: The Gaussian component's range in ``u``, in its widths; the EDSD's in ``u``
#: about its mode ``ln 3L`` (its log density is 33 and 48 below the peak).
_GAUSS_RANGE = 8.5
_EDSD_RANGE = (-12.0, 3.0)
#: The field's fixed nodes: segments of `_FIELD_STEP` over `_FIELD_RANGE`
#: in ``u``, split at every grid point's edges, with `_FIELD_NODES` nodes
#: each.
_FIELD_RANGE = (-8.0, 16.0)
_FIELD_STEP = 0.25
_FIELD_NODES = 8
_FIELD_X, _FIELD_W = np.polynomial.legendre.leggauss(_FIELD_NODES)
#: A bound (mas) that no parallax reaches: an open side of the cut.
_OPEN = 1e5
#: Smallest fraction kept: a component the cut excludes entirely.
_FLOOR = 1e-30
_GL_X, _GL_W = np.polynomial.legendre.leggauss(NODES_PER_SEGMENT)


class ParallaxCut(NamedTuple):
    """A parallax cut, and where each star sits on the interpolation grid.

    Attributes
    ----------
    bounds : array
        ``(lo, hi)`` in mas on the catalogue's parallax (``±inf`` for a
        one-sided cut).
    err_nodes, shift_nodes : array
        The grid's parallax errors and zero-point shifts (mas).
    weights : array
        Each star's interpolation weights on the grid, shape ``(n,
        len(shift_nodes) * len(err_nodes))``.
    field_nodes : array
        The fixed nodes in ``u = ln(r / pc)`` of the field's integral, (m,).
    field_kept : array
        Each node's quadrature weight times the fraction the cut keeps of
        stars at its distance, for every grid point, ``(len(shift_nodes) *
        len(err_nodes), m)``.
    """

    bounds: jax.Array
    err_nodes: jax.Array
    shift_nodes: jax.Array
    weights: jax.Array
    field_nodes: jax.Array
    field_kept: jax.Array


def parallax_cut(
    lo: float, hi: float, err, shift=None, dtype=np.float64
) -> ParallaxCut:
    """The cut ``lo < parallax < hi`` for stars with errors ``err``.

    Parameters
    ----------
    lo, hi : float
        The cut, in mas, on the catalogue's parallax; ``-inf`` or ``inf`` for
        an open side.
    err : array
        Each star's parallax error (mas, positive), as the fit uses it.
    shift : array, optional
        Each star's catalogue parallax minus the parallax fitted (the zero
        point that was subtracted), in mas; 0 when not given.
    dtype : optional
        Floating type of the arrays returned.

    Returns
    -------
    ParallaxCut
    """
    err = np.asarray(err, dtype=float)
    shift = np.zeros_like(err) if shift is None else np.asarray(shift, dtype=float)
    # An open side as a finite bound beyond every parallax, so that no
    # gradient meets an infinity.
    lo, hi = np.clip([lo, hi], -_OPEN, _OPEN)
    log_err, err_weights = _chebyshev_weights(np.log(err), N_ERR_NODES)
    shifts, shift_weights = _chebyshev_weights(shift, N_SHIFT_NODES)
    weights = (shift_weights[:, :, None] * err_weights[:, None, :]).reshape(
        len(err), -1
    )
    nodes, kept = _field_quadrature(lo, hi, np.exp(log_err), shifts)
    return ParallaxCut(
        bounds=np.array([lo, hi], dtype=dtype),
        err_nodes=np.exp(log_err).astype(dtype),
        shift_nodes=shifts.astype(dtype),
        weights=weights.astype(dtype),
        field_nodes=nodes.astype(dtype),
        field_kept=kept.astype(dtype),
    )


def pad_cut(cut: ParallaxCut | None, size: int, dtype) -> ParallaxCut | None:
    """``cut`` with its weights padded to ``size`` stars (zeros), as ``dtype``."""
    if cut is None:
        return None
    weights = np.zeros((size, cut.weights.shape[1]))
    weights[: cut.weights.shape[0]] = cut.weights
    return ParallaxCut(
        *(np.asarray(a).astype(dtype) for a in cut),
    )._replace(weights=weights.astype(dtype))


def _field_quadrature(lo: float, hi: float, errs: np.ndarray, shifts: np.ndarray):
    """The field's fixed nodes in ``u`` and the cut's factor at each, per grid point.

    Segment ends every `_FIELD_STEP` over `_FIELD_RANGE` and at every grid
    point's edges (the cut's sides ± `_EDGE` errors), `_FIELD_NODES`
    Gauss-Legendre nodes each. Returns the nodes (m,) and ``(S * E, m)``
    quadrature weights times kept fractions, in float64.
    """
    start, stop = _FIELD_RANGE
    grid = [(z, e) for z in shifts for e in errs]
    edges = [
        c - z + k * e for z, e in grid for c in (lo, hi) for k in (_EDGE, 0.0, -_EDGE)
    ]
    edges = np.asarray(edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = np.where(edges > 0, np.log(1000.0 / edges), stop)
    n_steps = round((stop - start) / _FIELD_STEP)
    ends = np.sort(
        np.clip(
            np.concatenate([np.linspace(start, stop, n_steps + 1), at]), start, stop
        )
    )
    half = 0.5 * (ends[1:] - ends[:-1])
    centre = 0.5 * (ends[1:] + ends[:-1])
    u = (centre[:, None] + half[:, None] * _FIELD_X[None, :]).reshape(-1)
    weight = (half[:, None] * _FIELD_W[None, :]).reshape(-1)
    plx = 1000.0 * np.exp(-u)
    erfc = np.frompyfunc(math.erfc, 1, 1)

    def cdf(x):  # Phi(x) in float64, to full precision in the lower tail
        return 0.5 * erfc(-x / math.sqrt(2.0)).astype(float)

    kept = np.empty((len(grid), u.size))
    for g, (z, e) in enumerate(grid):
        kept[g] = _between(cdf, np.where, (lo - z - plx) / e, (hi - z - plx) / e)
    return u, weight[None, :] * kept


def _between(cdf, where, bottom, top):
    """``Phi(top) - Phi(bottom)`` (``bottom <= top``), with ``cdf`` for Phi.

    Where both are positive, as the difference of the upper tails, which
    keeps its precision where both CDFs are near 1. ``where`` is NumPy's or
    JAX's.
    """
    return where(bottom > 0, cdf(-bottom) - cdf(-top), cdf(top) - cdf(bottom))


def _chebyshev_weights(values: np.ndarray, k: int):
    """``k`` Chebyshev nodes spanning ``values``, and each value's Lagrange weights.

    Equal values get a tiny interval around them, so that every fit has the
    same shapes (and compiled programs).
    """
    a, b = float(np.min(values)), float(np.max(values))
    if not b - a > 1e-6 * max(1.0, abs(a)):
        a, b = a - 1e-6 * max(1.0, abs(a)), b + 1e-6 * max(1.0, abs(a))
    j = np.arange(k)
    t = np.cos(np.pi * (2 * j + 1) / (2 * k))
    nodes = 0.5 * (a + b) + 0.5 * (b - a) * t
    # Barycentric weights of the Chebyshev points of the first kind.
    bary = (-1.0) ** j * np.sin(np.pi * (2 * j + 1) / (2 * k))
    diff = values[:, None] - nodes[None, :]
    exact = np.isclose(diff, 0.0, rtol=0.0, atol=1e-14 * (b - a))
    diff = np.where(exact, 1.0, diff)
    terms = bary[None, :] / diff
    weights = terms / terms.sum(axis=1, keepdims=True)
    hit = exact.any(axis=1)
    weights[hit] = exact[hit].astype(float)
    return nodes, weights


def selected_fraction_grid(prior, bounds, err_nodes, shift_nodes) -> jax.Array:
    """``ln P`` at every grid point, shape ``(len(shift_nodes), len(err_nodes))``.

    Parameters
    ----------
    prior : `~gaiadist.likelihood.GaussianLogPrior` or EDSDLogPrior
        The component's density in ``u = ln r`` (scalar parameters).
    bounds : array
        The cut ``(lo, hi)`` in mas.
    err_nodes, shift_nodes : array
        The grid.
    """
    lo, hi = bounds[0], bounds[1]
    mode = prior.mode
    # The integral runs over v = (u - mode) / scale, in which the density
    # keeps its shape whatever the width: a cluster far narrower than the
    # floating point resolution of u becomes its value at D (u rounds to
    # the mode), not an interval of zero length.
    if isinstance(prior, GaussianLogPrior):
        scale, log_scale = prior.sigma, jnp.log(prior.sigma)
        start, stop, inner = -_GAUSS_RANGE, _GAUSS_RANGE, 2.0
    else:
        scale, log_scale = 1.0, 0.0
        (start, stop), inner = _EDSD_RANGE, 1.0

    def at(shift, err):
        edges = []
        for c in (lo - shift, hi - shift):
            for k in (_EDGE, 0.0, -_EDGE):
                plx = c + k * err
                # v where the true parallax is plx; beyond the range if <= 0.
                u_edge = jnp.log(1000.0 / jnp.where(plx > 0, plx, 1.0))
                edges.append(jnp.where(plx > 0, (u_edge - mode) / scale, stop))
        ends = jnp.sort(
            jnp.clip(
                jnp.stack(
                    [jnp.asarray(e, mode.dtype) for e in (start, stop, -inner, inner)]
                    + edges
                ),
                start,
                stop,
            )
        )
        half = 0.5 * (ends[1:] - ends[:-1])
        centre = 0.5 * (ends[1:] + ends[:-1])
        v = centre[:, None] + half[:, None] * _GL_X[None, :]
        plx = 1000.0 * jnp.exp(-(mode + scale * v))
        kept = _between(
            ndtr, jnp.where, (lo - shift - plx) / err, (hi - shift - plx) / err
        )
        density = jnp.exp(prior.logpdf_at(scale * v) + log_scale)
        total = jnp.sum(half[:, None] * _GL_W[None, :] * density * kept)
        return jnp.log(jnp.maximum(total, _FLOOR))

    return jax.vmap(lambda z: jax.vmap(lambda e: at(z, e))(err_nodes))(shift_nodes)


def log_selected_fraction(prior, cut: ParallaxCut) -> jax.Array:
    """Each star's ``ln P``, the fraction of ``prior``'s population the cut keeps."""
    return cut.weights @ _log_fraction_grid(prior, cut)


def _log_fraction_grid(prior, cut: ParallaxCut) -> jax.Array:
    """``ln P`` at the grid points of ``cut``, flattened.

    The cluster's nodes follow it (`selected_fraction_grid`); the field's
    are the cut's fixed ones.
    """
    if isinstance(prior, GaussianLogPrior):
        grid = selected_fraction_grid(prior, cut.bounds, cut.err_nodes, cut.shift_nodes)
        return grid.reshape(-1)
    total = cut.field_kept @ jnp.exp(prior.logpdf(cut.field_nodes))
    return jnp.log(jnp.maximum(total, _FLOOR))


def mixture_log_selected(q, cluster, field, groups) -> jax.Array:
    """``-sum_n weight_n ln(q P_cluster,n + (1 - q) P_field,n)``: the cut's term.

    Parameters
    ----------
    q : array
        The cluster's share of the stars before the cut; ``cluster`` None
        for the field alone (``q = 0``).
    cluster, field : prior
        The components' densities in ``u = ln r`` (as for
        `selected_fraction_grid`).
    groups : sequence of (ParallaxCut, array)
        Stars as cuts (one grid, their rows of weights) with a weight each
        (1 for a star, 0 for padding); every group's grid is the first's,
        which is computed once.
    """
    cut = groups[0][0]
    log_f = _log_fraction_grid(field, cut)
    log_c = None if cluster is None else _log_fraction_grid(cluster, cut)
    total = jnp.zeros(())
    for part, weight in groups:
        kept = part.weights @ log_f
        if log_c is not None:
            kept = jnp.logaddexp(
                jnp.log(q) + part.weights @ log_c, jnp.log1p(-q) + kept
            )
        total = total - jnp.sum(weight * kept)
    return total
