"""The marginal parallax likelihood against a brute-force integral."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gaiadist.likelihood import (
    EDSDLogPrior,
    GaussianLogPrior,
    log_marginal_likelihood,
    log_marginal_likelihood_fast,
)

from .reference import brute_force_log_marginal


@functools.cache
def _compiled(fn, make_prior):
    """``fn(plx, err, make_prior(*args))``, compiled once per shape and dtype.

    Run op by op, each of the rules' many operations would compile on its own.
    """
    return jax.jit(lambda plx, err, *args: fn(plx, err, make_prior(*args)))


# Stars from the M67 field's range of parallax and error, plus harder ones:
# negative and tiny parallaxes, S/N from 0.01 to 1000.
PLX = np.array(
    [1.15, 1.19, 0.41, 0.97, 1.67, 0.21, 2.5, 0.3, -1.0, 0.05, 10.0, 0.5, 0.01]
)
ERR = np.array(
    [0.013, 0.5, 0.018, 0.35, 0.69, 0.13, 0.73, 0.3, 0.5, 1.0, 0.01, 2.0, 0.01]
)

# Population parameters over the prior's range (about +-2 prior sd for ln D and
# ln L; cluster widths from 0.7 % to e in ln r).
LOG_D = math.log(920.0) + np.array([-4.0, -2.0, -0.1, 0.0, 2.0, 4.0])
LOG_SIGMA = np.array([-5.0, -4.0, -2.0, 0.0, 1.0])
LOG_L = math.log(370.0) + np.linspace(-4.0, 4.0, 9)


def _compare(fn, make_prior, kind, a, b=None):
    with jax.enable_x64(True):
        args = (a,) if b is None else (a, b)
        got = np.asarray(
            _compiled(fn, make_prior)(jnp.asarray(PLX), jnp.asarray(ERR), *args)
        )
    want = np.array(
        [
            brute_force_log_marginal(p, e, kind, a, b)
            for p, e in zip(PLX, ERR, strict=True)
        ]
    )
    return got, want


@pytest.mark.parametrize("log_d", LOG_D)
def test_cluster_integral_matches_brute_force(log_d):
    for log_sigma in LOG_SIGMA:
        sigma = math.exp(log_sigma)
        got, want = _compare(
            log_marginal_likelihood,
            GaussianLogPrior,
            "cluster",
            log_d,
            sigma,
        )
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_field_integral_matches_brute_force():
    for log_l in LOG_L:
        got, want = _compare(log_marginal_likelihood, EDSDLogPrior, "field", log_l)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_float32_keeps_its_accuracy():
    got = np.asarray(
        _compiled(log_marginal_likelihood, EDSDLogPrior)(
            jnp.asarray(PLX, jnp.float32),
            jnp.asarray(ERR, jnp.float32),
            jnp.float32(math.log(470.0)),
        )
    )
    want = np.array(
        [
            brute_force_log_marginal(p, e, "field", math.log(470.0))
            for p, e in zip(PLX, ERR, strict=True)
        ]
    )
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("log_sigma", [-8.0, -12.0, -16.0])
def test_narrow_cluster_in_float32(log_sigma):
    """A cluster narrower than float32's spacing of ln r (about 5e-7 at M67).

    An unresolved cluster size leaves ``log_sigma`` to its prior's tail, so
    a sampler visits widths down to e^-16 (a few AU at M67); both rules must
    stay exact there. Before the rules worked in offsets from the prior's
    mode, float32 rounding of ``ln r - ln D`` put the sum over a 2,000-star
    field off by tens of nats and the chains diverged.
    """
    plx32 = jnp.asarray(PLX, jnp.float32)
    err32 = jnp.asarray(ERR, jnp.float32)
    m67_like = (PLX > 0.2) & (PLX < 3)
    for log_d in (math.log(837.0), math.log(3000.0)):
        args = (jnp.float32(log_d), jnp.exp(jnp.float32(log_sigma)))
        want = np.array(
            [
                brute_force_log_marginal(p, e, "cluster", log_d, math.exp(log_sigma))
                for p, e in zip(PLX, ERR, strict=True)
            ]
        )
        robust = _compiled(log_marginal_likelihood, GaussianLogPrior)(
            plx32, err32, *args
        )
        robust = np.asarray(robust)
        np.testing.assert_allclose(robust, want, rtol=2e-5, atol=2e-4)
        fast = _compiled(log_marginal_likelihood_fast, GaussianLogPrior)(
            plx32, err32, *args
        )
        fast = np.asarray(fast)
        np.testing.assert_allclose(fast[m67_like], want[m67_like], rtol=2e-5, atol=2e-4)


def test_fast_rule_near_a_cluster_solution():
    """The sampler's Gauss-Hermite rule, per star, where M67's posterior lives.

    Its per-star mixture likelihood agrees with the brute force to 2e-3 (the
    sum over 4,300 M67 stars to about 1e-3, see the cluster tests); it is not
    meant for a component far from a star, where only the other one counts,
    and is off by up to 0.03 for the S/N ~ 1 star at 0.01 mas outside the cut.
    """
    log_d, sigma, log_l, q = math.log(837.0), 14.6 / 837.0, math.log(470.0), 0.424
    c_got, c_want = _compare(
        log_marginal_likelihood_fast, GaussianLogPrior, "cluster", log_d, sigma
    )
    f_got, f_want = _compare(log_marginal_likelihood_fast, EDSDLogPrior, "field", log_l)
    got = np.logaddexp(np.log(q) + c_got, np.log1p(-q) + f_got)
    want = np.logaddexp(np.log(q) + c_want, np.log1p(-q) + f_want)
    m67_like = (PLX > 0.2) & (PLX < 3)  # the tutorial's cut
    np.testing.assert_allclose(got[m67_like], want[m67_like], atol=2e-3)


def test_gradient_is_the_derivative_of_the_value():
    plx = jnp.asarray(PLX[:8])
    err = jnp.asarray(ERR[:8])

    def total(theta):
        c = log_marginal_likelihood(
            plx, err, GaussianLogPrior(theta[0], jnp.exp(theta[1]))
        )
        f = log_marginal_likelihood(plx, err, EDSDLogPrior(theta[2]))
        return jnp.sum(c + f)

    with jax.enable_x64(True):
        theta = jnp.array([6.73, -4.0, 6.15])
        grad = np.asarray(jax.jit(jax.grad(total))(theta))
        total = jax.jit(total)
        h = 1e-5
        numeric = [
            (total(theta.at[i].add(h)) - total(theta.at[i].add(-h))) / (2 * h)
            for i in range(3)
        ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-4)
