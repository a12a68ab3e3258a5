"""Synthetic Gaia-like fields: the truth they carry and their observables."""

import astropy.units as u
import numpy as np
import pytest
from scipy import stats

from gaiadist import apply_zeropoint
from gaiadist.simulate import cluster_field, parallax_error_dr3


def test_dr3_parallax_errors_match_the_published_law():
    # Gaia DR3 documentation: ~0.02-0.03 mas at G <= 15, ~0.5-0.6 at G = 20.
    err = parallax_error_dr3([10.0, 15.0, 17.0, 20.0, 21.0])
    assert err[0] == pytest.approx(np.sqrt(40 + 800 * 10**-0.8 + 30 * 10**-1.6) / 1e3)
    assert err[1] == pytest.approx(np.sqrt(870) / 1e3)
    assert 0.07 < err[2] < 0.09
    assert 0.5 < err[3] < 0.7
    assert 1.2 < err[4] < 1.6


def test_truth_is_drawn_from_the_cluster_model():
    t = cluster_field(
        20000,
        distance=1200 * u.pc,
        size=12 * u.pc,
        fraction=0.25,
        length_scale=500 * u.pc,
        seed=3,
    )
    truth = t.meta["truth"]
    assert truth["D"] == 1200 and truth["approx_size"] == pytest.approx(12)
    member = t["true_member"]
    assert truth["n_members"] == np.count_nonzero(member)
    # Membership is Bernoulli(Q): within 4 sigma of 0.25 * 20000.
    assert abs(member.sum() - 5000) < 4 * np.sqrt(20000 * 0.25 * 0.75)
    r = t["true_distance"].to_value(u.pc)
    # Members: ln r ~ Normal(ln D, size / D); field: Gamma(3, scale L).
    assert (
        stats.kstest(np.log(r[member]), "norm", args=(np.log(1200), 0.01)).pvalue > 1e-3
    )
    assert stats.kstest(r[~member], "gamma", args=(3, 0, 500)).pvalue > 1e-3
    # Parallax errors do not depend on membership (the model assumes so).
    err = t["parallax_error"].value
    assert stats.ks_2samp(err[member], err[~member]).pvalue > 1e-3


def test_zero_point_is_removed_exactly_and_ids_are_exact():
    t = cluster_field(500, seed=4)
    assert t["source_id"].dtype == np.int64
    assert len(np.unique(t["source_id"])) == 500
    corrected = apply_zeropoint(t)
    assert np.all(corrected["zpt_valid"])
    residual = (
        corrected["parallax_corrected"]
        - 1000 / t["true_distance"].to_value(u.pc) * u.mas
    )
    pull = (residual / t["parallax_error"]).decompose().value
    assert abs(np.mean(pull)) < 0.2 and abs(np.std(pull) - 1) < 0.1
    raw = cluster_field(500, seed=4, zero_point=False)
    assert np.any(raw["parallax"] != t["parallax"])
    np.testing.assert_allclose(
        raw["parallax"].value, corrected["parallax_corrected"].value, atol=1e-12
    )
