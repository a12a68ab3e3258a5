import jax
import numpy as np
import pytest
import scipy.stats as st

from gaiadist import EDSD, GeneralizedGamma

R = np.array([0.5, 10.0, 150.0, 900.0, 4000.0, 25000.0])


@pytest.mark.parametrize("length_scale", [100.0, 370.0, 1350.0, 5000.0])
def test_edsd_log_prob_matches_scipy_gamma(length_scale):
    expected = st.gamma(3, scale=length_scale).logpdf(R)
    got = np.asarray(EDSD(length_scale).log_prob(R))
    np.testing.assert_allclose(got, expected, rtol=2e-6)
    # ... and the formula of Bailer-Jones (2015) written out.
    direct = np.log(R**2 / (2 * length_scale**3)) - R / length_scale
    np.testing.assert_allclose(got, direct, rtol=2e-6)


@pytest.mark.parametrize(
    "alpha, beta, length_scale",
    [(1.0, 2.0, 370.0), (0.5, 1.0, 1000.0), (2.0, 4.0, 3000.0), (1.3, -0.4, 200.0)],
)
def test_generalized_gamma_log_prob_and_cdf_match_scipy(alpha, beta, length_scale):
    ref = st.gengamma(a=(beta + 1) / alpha, c=alpha, scale=length_scale)
    prior = GeneralizedGamma(alpha, beta, length_scale)
    np.testing.assert_allclose(prior.log_prob(R), ref.logpdf(R), rtol=2e-5)
    np.testing.assert_allclose(prior.cdf(R), ref.cdf(R), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(prior.mean, ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(prior.variance, ref.var(), rtol=1e-4)


def test_edsd_is_the_generalized_gamma_with_alpha_1_beta_2():
    np.testing.assert_allclose(
        EDSD(800.0).log_prob(R),
        GeneralizedGamma(1.0, 2.0, 800.0).log_prob(R),
        rtol=1e-6,
    )
    assert float(EDSD(800.0).mode) == pytest.approx(1600.0)


@pytest.mark.parametrize(
    "prior", [EDSD(370.0), GeneralizedGamma(0.7, 1.5, 900.0)], ids=["edsd", "ggd"]
)
def test_samples_have_the_right_moments(prior):
    n = 400_000
    r = np.asarray(prior.sample(jax.random.PRNGKey(3), (n,)), dtype=float)
    mean, var = float(prior.mean), float(prior.variance)
    assert np.all(r > 0)
    # Within 5 standard errors of the exact mean and variance.
    assert abs(r.mean() - mean) < 5 * np.sqrt(var / n)
    kurt_bound = np.sqrt((np.mean((r - mean) ** 4) - var**2) / n)
    assert abs(r.var() - var) < 5 * kurt_bound
    # And the whole distribution: a KS test against the exact CDF.
    ks = st.kstest(r[:20000], lambda x: np.asarray(prior.cdf(x)))
    assert ks.pvalue > 1e-3


def test_batched_parameters_broadcast():
    prior = EDSD(np.array([100.0, 1000.0]))
    assert prior.batch_shape == (2,)
    assert prior.sample(jax.random.PRNGKey(0), (5,)).shape == (5, 2)


def test_invalid_parameters_are_refused_when_validated():
    with pytest.raises(ValueError):
        EDSD(-1.0, validate_args=True)
    with pytest.raises(ValueError):
        GeneralizedGamma(1.0, -2.0, 100.0, validate_args=True)
