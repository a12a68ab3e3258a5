"""The marginal method's log posterior: closed-form derivatives against autodiff."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from gaiadist.cluster import default_priors
from gaiadist.likelihood import (
    EDSDLogPrior,
    GaussianLogPrior,
    log_marginal_likelihood_fast,
)
from gaiadist.population import POPULATION, log_density, log_density_terms, transforms

RNG = np.random.default_rng(1)
# Members near 1.19 mas and field stars from negative parallaxes to 3 mas,
# errors from 0.01 to 1 mas; the last ten are padding (weight 0).
PLX = np.concatenate([RNG.normal(1.19, 0.1, 150), RNG.uniform(-0.5, 3.0, 150)])
ERR = RNG.uniform(0.01, 1.0, 300)
WEIGHT = np.where(np.arange(300) < 290, 1.0, 0.0)

# Priors with the identity, sigmoid, exponential and affine-sigmoid maps.
PRIORS = {
    "seed": default_priors(),
    "other": {
        "log_L": dist.LogNormal(math.log(6.0), 0.5),
        "log_D": dist.Normal(math.log(920.0), 2.0),
        "log_sigma": dist.Uniform(-10.0, 1.0),
        "Q": dist.Beta(2.0, 2.0),
    },
}
# Points in the constrained space: near M67's solution, a wide cluster, a
# distant narrow one with few members.
THETA = [
    (math.log(470.0), math.log(837.0), -4.05, 0.42),
    (math.log(300.0), math.log(400.0), -1.0, 0.8),
    (math.log(1800.0), math.log(2500.0), -6.0, 0.05),
]


def reference(x, priors):
    """The log posterior written with the library's likelihood, for autodiff."""
    total = 0.0
    theta = []
    for k, transform, xk in zip(POPULATION, transforms(priors), x, strict=True):
        value = transform(xk)
        theta.append(value)
        total = (
            total
            + priors[k].log_prob(value)
            + transform.log_abs_det_jacobian(xk, value)
        )
    log_l, log_d, log_sigma, q = theta
    plx, err = jnp.asarray(PLX), jnp.asarray(ERR)
    c = log_marginal_likelihood_fast(
        plx, err, GaussianLogPrior(log_d, jnp.exp(log_sigma))
    )
    f = log_marginal_likelihood_fast(plx, err, EDSDLogPrior(log_l))
    per_star = jnp.logaddexp(jnp.log(q) + c, jnp.log1p(-q) + f)
    return total + jnp.sum(jnp.asarray(WEIGHT) * per_star)


@functools.cache
def _programs(name):
    """The library's terms and the reference's derivatives, compiled for ``name``.

    Run op by op, each of their many operations would compile on its own.
    """
    priors = PRIORS[name]

    def ref(x):
        return reference(x, priors)

    return (
        jax.jit(lambda x: log_density_terms(x, PLX, ERR, WEIGHT, priors, order=2)),
        jax.jit(ref),
        jax.jit(jax.grad(ref)),
        jax.jit(jax.hessian(ref)),
        jax.jit(jax.grad(lambda x: log_density(x, PLX, ERR, WEIGHT, priors))),
    )


@pytest.mark.parametrize("name", PRIORS)
@pytest.mark.parametrize("theta", THETA)
def test_derivatives_match_automatic_differentiation(name, theta):
    priors = PRIORS[name]
    with jax.enable_x64(True):
        theta = list(theta)
        if name == "other":
            theta[0] = math.exp(theta[0] - 4.0)  # on LogNormal's scale
        x = jnp.array(
            [float(t.inv(v)) for t, v in zip(transforms(priors), theta, strict=True)]
        )
        terms, ref, ref_grad, ref_hessian, nuts_grad = _programs(name)
        value, grad, hessian = terms(x)
        np.testing.assert_allclose(value, ref(x), rtol=1e-12)
        want_grad = ref_grad(x)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=1e-9)
        want_hessian = ref_hessian(x)
        scale = np.max(np.abs(want_hessian))
        np.testing.assert_allclose(hessian, want_hessian, rtol=1e-7, atol=1e-9 * scale)
        # log_density carries the same gradient for NUTS.
        np.testing.assert_allclose(nuts_grad(x), want_grad, rtol=1e-9, atol=1e-9)


def test_float32_gradient_near_m67():
    x = jnp.array([math.log(470.0), math.log(837.0), -4.05, -0.3], jnp.float32)
    priors = default_priors()
    # float32 copies of the data: JAX keeps the float64 arrays it made of
    # PLX, ERR and WEIGHT for the compiled float64 tests above.
    plx, err, weight = (a.astype(np.float32) for a in (PLX, ERR, WEIGHT))
    got = jax.jit(jax.grad(lambda x: log_density(x, plx, err, weight, priors)))(x)
    with jax.enable_x64(True):
        want = _programs("seed")[2](jnp.asarray(x, jnp.float64))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
