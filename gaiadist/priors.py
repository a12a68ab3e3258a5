"""Distance priors as NumPyro distributions over the distance ``r`` in pc.

Both priors belong to the generalised gamma family
``p(r) ∝ r**beta * exp(-(r / L)**alpha)``: the exponentially decreasing space
density prior (EDSD, Bailer-Jones 2015) is the member with ``alpha = 1`` and
``beta = 2``. The quadrature in :mod:`gaiadist.posterior` works with any member
through the `alpha`, `beta` and `length_scale` attributes both classes share.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammainc, gammaln, xlogy
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.util import promote_shapes, validate_sample

__all__ = ["EDSD", "GeneralizedGamma"]


class GeneralizedGamma(Distribution):
    r"""Generalised gamma distance prior (Bailer-Jones et al. 2021).

    .. math::

        p(r) = \frac{\alpha}{L^{\beta + 1}\,\Gamma\left(\frac{\beta + 1}{\alpha}\right)}
               \, r^{\beta} \, e^{-(r/L)^{\alpha}}, \qquad r > 0.

    Parameters
    ----------
    alpha : float or array
        Shape of the exponential cut-off, ``alpha > 0``.
    beta : float or array
        Power of the rising part, ``beta > -1``.
    length_scale : float or array
        Length scale ``L`` in pc, ``L > 0``.
    validate_args : bool, optional
        Check the parameters, as in every NumPyro distribution.
    """

    arg_constraints = {
        "alpha": constraints.positive,
        "beta": constraints.greater_than(-1.0),
        "length_scale": constraints.positive,
    }
    support = constraints.positive
    reparametrized_params = ["length_scale"]

    def __init__(self, alpha, beta, length_scale, *, validate_args=None):
        self.alpha, self.beta, self.length_scale = promote_shapes(
            alpha, beta, length_scale
        )
        batch_shape = jax.lax.broadcast_shapes(
            jnp.shape(alpha), jnp.shape(beta), jnp.shape(length_scale)
        )
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    @property
    def _shape_k(self):
        """Shape parameter ``(beta + 1) / alpha`` of the underlying gamma law."""
        return (self.beta + 1.0) / self.alpha

    def sample(self, key, sample_shape=()):
        """Draw distances: ``L * G**(1/alpha)`` with ``G ~ Gamma((beta+1)/alpha)``."""
        shape = sample_shape + self.batch_shape
        g = jax.random.gamma(key, jnp.broadcast_to(self._shape_k, shape), shape)
        return self.length_scale * g ** (1.0 / self.alpha)

    @validate_sample
    def log_prob(self, value):
        """Log density of the distance ``value`` (pc)."""
        return (
            jnp.log(self.alpha)
            - (self.beta + 1.0) * jnp.log(self.length_scale)
            - gammaln(self._shape_k)
            + xlogy(self.beta, value)
            - (value / self.length_scale) ** self.alpha
        )

    def cdf(self, value):
        """Cumulative distribution function at distance ``value`` (pc)."""
        return gammainc(self._shape_k, (value / self.length_scale) ** self.alpha)

    def _moment(self, k):
        return self.length_scale**k * jnp.exp(
            gammaln((self.beta + 1.0 + k) / self.alpha) - gammaln(self._shape_k)
        )

    @property
    def mean(self):
        """Mean distance (pc)."""
        return self._moment(1)

    @property
    def variance(self):
        """Variance of the distance (pc^2)."""
        return self._moment(2) - self._moment(1) ** 2

    @property
    def mode(self):
        """Most probable distance (pc); 0 when ``beta <= 0``."""
        return self.length_scale * jnp.clip(self.beta / self.alpha, 0.0) ** (
            1.0 / self.alpha
        )


class EDSD(GeneralizedGamma):
    r"""Exponentially decreasing space density prior (Bailer-Jones 2015).

    .. math:: p(r) = \frac{r^2}{2 L^3} e^{-r/L}, \qquad r > 0,

    which is ``Gamma(3, rate=1/L)``: the generalised gamma prior with
    ``alpha = 1`` and ``beta = 2``. Its mode is at ``2 L``.

    Parameters
    ----------
    length_scale : float or array
        Length scale ``L`` in pc, ``L > 0``.
    validate_args : bool, optional
        Check the parameters, as in every NumPyro distribution.
    """

    arg_constraints = {"length_scale": constraints.positive}

    def __init__(self, length_scale, *, validate_args=None):
        super().__init__(1.0, 2.0, length_scale, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        """Draw distances as ``L * Gamma(3)``."""
        shape = sample_shape + self.batch_shape
        return self.length_scale * jax.random.gamma(key, 3.0, shape)

    @validate_sample
    def log_prob(self, value):
        """Log density of the distance ``value`` (pc)."""
        x = value / self.length_scale
        return xlogy(2.0, x) - x - jnp.log(2.0 * self.length_scale)
