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
weights computed once per fit. That costs a fixed few thousand integrand
evaluations per evaluation of the posterior, whatever the number of stars.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from .likelihood import GaussianLogPrior

__all__ = [
    "ParallaxCut",
    "log_selected_fraction",
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
    """

    bounds: jax.Array
    err_nodes: jax.Array
    shift_nodes: jax.Array
    weights: jax.Array


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
    return ParallaxCut(
        bounds=np.array([lo, hi], dtype=dtype),
        err_nodes=np.exp(log_err).astype(dtype),
        shift_nodes=shifts.astype(dtype),
        weights=weights.astype(dtype),
    )


def pad_cut(cut: ParallaxCut | None, size: int, dtype) -> ParallaxCut | None:
    """``cut`` with its weights padded to ``size`` stars (zeros), as ``dtype``."""
    if cut is None:
        return None
    weights = np.zeros((size, cut.weights.shape[1]))
    weights[: cut.weights.shape[0]] = cut.weights
    return ParallaxCut(
        *(
            np.asarray(a).astype(dtype)
            for a in (cut.bounds, cut.err_nodes, cut.shift_nodes)
        ),
        weights.astype(dtype),
    )


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
    if isinstance(prior, GaussianLogPrior):
        start = mode - _GAUSS_RANGE * prior.sigma
        stop = mode + _GAUSS_RANGE * prior.sigma
        inner = 2.0 * prior.sigma
    else:
        start, stop = mode + _EDSD_RANGE[0], mode + _EDSD_RANGE[1]
        inner = 1.0 + 0.0 * mode

    def at(shift, err):
        edges = []
        for c in (lo - shift, hi - shift):
            for k in (_EDGE, 0.0, -_EDGE):
                plx = c + k * err
                # u where the true parallax is plx; beyond the range if <= 0.
                edges.append(
                    jnp.where(
                        plx > 0, jnp.log(1000.0 / jnp.where(plx > 0, plx, 1.0)), stop
                    )
                )
        ends = jnp.sort(
            jnp.clip(
                jnp.stack([start, stop, mode - inner, mode + inner, *edges]),
                start,
                stop,
            )
        )
        half = 0.5 * (ends[1:] - ends[:-1])
        centre = 0.5 * (ends[1:] + ends[:-1])
        u = centre[:, None] + half[:, None] * _GL_X[None, :]
        plx = 1000.0 * jnp.exp(-u)
        top, bottom = (hi - shift - plx) / err, (lo - shift - plx) / err
        # Both arguments positive: the difference of the upper tails, which
        # keeps its precision where both CDFs are near 1.
        kept = jnp.where(
            bottom > 0, ndtr(-bottom) - ndtr(-top), ndtr(top) - ndtr(bottom)
        )
        density = jnp.exp(prior.logpdf(u))
        total = jnp.sum(half[:, None] * _GL_W[None, :] * density * kept)
        return jnp.log(jnp.maximum(total, _FLOOR))

    return jax.vmap(lambda z: jax.vmap(lambda e: at(z, e))(err_nodes))(shift_nodes)


def log_selected_fraction(prior, cut: ParallaxCut) -> jax.Array:
    """Each star's ``ln P``, the fraction of ``prior``'s population the cut keeps."""
    grid = selected_fraction_grid(prior, cut.bounds, cut.err_nodes, cut.shift_nodes)
    return cut.weights @ grid.reshape(-1)
