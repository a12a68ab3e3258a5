"""Choosing the mode that whitens the sampler."""

import numpy as np

from gaiadist.marginal import best_mode


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
