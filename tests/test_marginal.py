"""The marginal method's pieces: the whitening mode and the per-star results."""

import numpy as np
import pytest

from gaiadist.marginal import best_mode, star_results

from .reference import SIGMA_PROBS, brute_force_mixture


def test_best_mode_weighs_height_by_width():
    # Mode 0 is higher but 1000 times narrower in every direction than mode
    # 1: its Laplace mass is 1 + 0.5 * 4 * ln(1e-6) = -26.6 against 0.
    modes = np.array([[0.0] * 4, [1.0] * 4])
    log_p = np.array([1.0, 0.0])
    hessians = np.stack([1e6 * np.eye(4), np.eye(4)])
    mode, hessian = best_mode(modes, log_p, hessians)
    np.testing.assert_array_equal(mode, modes[1])
    np.testing.assert_array_equal(hessian, hessians[1])


def test_best_mode_skips_searches_that_stopped_short():
    modes = np.array([[0.0] * 4, [1.0] * 4, [2.0] * 4])
    log_p = np.array([5.0, 0.0, np.nan])
    saddle = np.diag([1.0, 1.0, 1.0, -1.0])
    hessians = np.stack([saddle, np.eye(4), np.eye(4)])
    np.testing.assert_array_equal(best_mode(modes, log_p, hessians)[0], modes[1])
    # With no positive definite Hessian at all, the highest finite log_p wins.
    hessians[1] = saddle
    np.testing.assert_array_equal(best_mode(modes, log_p, hessians)[0], modes[0])


M67_SD = np.array([0.015, 0.0012, 0.085, 0.011])


@pytest.mark.parametrize(
    "size, sd, seed",
    [
        (0.0175, M67_SD, 4),
        (0.0175, 10.0 * M67_SD, 4),
        (0.0012, np.array([0.015, 0.0005, 0.28, 0.011]), 5),
    ],
)
def test_star_results_match_brute_force(size, sd, seed):
    # Stars of every kind: members with precise and poor parallaxes, field
    # stars near and far, a barely detected star and a negative parallax.
    # Draws scattered like M67's posterior and ten times wider, and a
    # cluster 15 times narrower (1 pc at 837 pc) with its size resolved: too
    # narrow for a grid of float32 nodes at absolute ln r (on one, a star's
    # percentiles were off by 2.5e-4).
    plx = np.array([1.19, 1.2, 1.15, 1.3, 2.5, 0.4, 0.25, 1.0, -0.3, 1.19])
    err = np.array([0.02, 0.05, 0.3, 0.1, 0.05, 0.1, 0.2, 0.9, 0.5, 1.5])
    rng = np.random.default_rng(seed)
    centre = np.array([np.log(470.0), np.log(837.0), np.log(size), 0.42])
    draws = centre + sd * rng.normal(size=(16, 4))
    p_member, quantiles, check = star_results(plx, err, draws.astype(np.float32))
    for i in range(plx.size):
        p_ref, q_ref, _ = brute_force_mixture(plx[i], err[i], draws)
        assert abs(p_member[i] - p_ref) < 2e-5, (i, p_member[i], p_ref)
        np.testing.assert_allclose(quantiles[i], q_ref, rtol=2e-5, err_msg=str(i))
    # The fast rule the sampler uses agrees with these nodes at every draw.
    assert check < 1e-3


def test_star_results_unresolved_cluster():
    # A cluster far narrower than its distance is known: draws of sigma from
    # about 1e-8 to 1e-4 in ln r (some below float32's spacing of ln r near
    # ln D) and of ln D spread by 0.003, so that each draw puts its members
    # at its own ln D. The exact distance CDF is then a staircase with a
    # step per draw, and the percentiles can only be right to within a
    # step: the exact CDF at each is within 0.75 / (number of draws) of its
    # probability (at most 0.47 / 32 measured over four seeds).
    plx = np.array([1.19, 1.2, 1.1, 1.3, 1.0, -0.3])
    err = np.array([0.02, 0.3, 0.1, 0.05, 0.9, 0.5])
    rng = np.random.default_rng(2)
    centre = np.array([np.log(470.0), np.log(837.0), np.log(1e-6), 0.42])
    sd = np.array([0.015, 0.003, 2.0, 0.011])
    draws = centre + sd * rng.normal(size=(32, 4))
    p_member, quantiles, _ = star_results(plx, err, draws.astype(np.float32))
    for i in range(plx.size):
        p_ref, _, cdf = brute_force_mixture(plx[i], err[i], draws)
        assert abs(p_member[i] - p_ref) < 2e-5, (i, p_member[i], p_ref)
        off = cdf(np.log(quantiles[i])) - np.array(SIGMA_PROBS)
        assert np.max(np.abs(off)) < 0.75 / len(draws), (i, off)
