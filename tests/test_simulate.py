"""Synthetic Gaia-like fields: the truth they carry and their observables."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
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


def test_proper_motions_and_positions_follow_the_astrometric_truth():
    t = cluster_field(
        30000,
        distance=1500 * u.pc,
        size=10 * u.pc,
        fraction=0.3,
        r50=4 * u.pc,
        proper_motion=(2.0, -5.0) * u.mas / u.yr,
        velocity_dispersion=2.0 * u.km / u.s,
        seed=5,
    )
    truth = t.meta["truth"]
    assert (truth["r50"], truth["pmra"], truth["pmdec"]) == (4.0, 2.0, -5.0)
    member = np.asarray(t["true_member"])
    r = t["true_distance"].to_value(u.pc)
    # Members: pull of each proper motion against the intrinsic spread at the
    # star's own distance plus its error is a unit normal.
    intrinsic = 2.0 / (4.740470446 * r[member] / 1000.0)
    for name, centre in (("pmra", 2.0), ("pmdec", -5.0)):
        err = t[f"{name}_error"].value[member]
        pull = (t[name].value[member] - centre) / np.hypot(intrinsic, err)
        assert stats.kstest(pull, "norm").pvalue > 1e-3, name
    # Members lie in a Plummer profile, R^2 / (R^2 + r50^2) of them within R,
    # cut at the cone's edge (0.5 deg, 13.1 pc at 1.5 kpc).
    centre = SkyCoord(132.846 * u.deg, 11.814 * u.deg)
    sep = centre.separation(SkyCoord(t["ra"], t["dec"])).to_value(u.rad) * 1500
    edge = np.radians(0.5) * 1500
    assert sep[member].max() < edge
    for radius in (2.0, 4.0, 8.0):
        want = (radius**2 / (radius**2 + 16)) / (edge**2 / (edge**2 + 16))
        assert abs(np.mean(sep[member] < radius) - want) < 0.015, radius
    # Field stars are uniform over the cone: the fraction inside half its
    # radius is a quarter.
    assert abs(np.mean(sep[~member] < 0.25 * np.pi / 180 * 1500) - 0.25) < 0.02
    # Errors are drawn with the reported correlations: the parallax and pmra
    # residuals of field stars with the largest positive and negative
    # correlations have correlations of their sign.
    plx_res = (t["parallax"].value - 1000 / r - _zpt(t)) / t["parallax_error"].value
    rho = np.asarray(t["parallax_pmra_corr"])
    for sign in (1, -1):
        pick = member & (sign * rho > 0.2)
        pm_res = (t["pmra"].value[pick] - 2.0) / np.hypot(
            2.0 / (4.740470446 * r[pick] / 1000.0), t["pmra_error"].value[pick]
        )
        assert sign * np.corrcoef(plx_res[pick], pm_res)[0, 1] > 0.1
    # The field's proper motions: the mixture's mean.
    weights = np.array([c[0] for c in truth["field_motion"]])
    mean_ra = np.sum(weights * np.array([c[1] for c in truth["field_motion"]]))
    assert abs(np.mean(t["pmra"].value[~member]) - mean_ra) < 0.1


def _zpt(t):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return apply_zeropoint(t)["zpt"].value


def test_outliers_move_with_their_own_spread():
    """A share of the cluster's stars with ``outlier_widen`` times its dispersion."""
    t = cluster_field(
        20000,
        distance=1000 * u.pc,
        fraction=0.3,
        proper_motion=(2.0, -5.0) * u.mas / u.yr,
        velocity_dispersion=2.0 * u.km / u.s,
        outlier_share=0.25,
        outlier_widen=4.0,
        seed=8,
    )
    truth = t.meta["truth"]
    member, outlier = (np.asarray(t[c]) for c in ("true_member", "true_outlier"))
    assert not np.any(outlier & ~member)
    assert truth["n_outliers"] == np.count_nonzero(outlier)
    assert abs(outlier.sum() / member.sum() - 0.25) < 0.02
    r = t["true_distance"].to_value(u.pc)
    for stars, widen in ((member & ~outlier, 1.0), (outlier, 4.0)):
        intrinsic = widen * 2.0 / (4.740470446 * r[stars] / 1000.0)
        err = t["pmra_error"].value[stars]
        pull = (t["pmra"].value[stars] - 2.0) / np.hypot(intrinsic, err)
        assert stats.kstest(pull, "norm").pvalue > 1e-3, widen
    for bad in ({"outlier_share": 1.0}, {"outlier_widen": 0.5}):
        with pytest.raises(ValueError, match="outlier_share must be in"):
            cluster_field(100, **bad)
