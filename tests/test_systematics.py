"""The shared parallax systematic and what it adds to a cluster's distance."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable
from scipy import stats

from gaiadist import ClusterDistance, InputError
from gaiadist.systematics import (
    PARALLAX_SYSTEMATIC,
    distance_with_offset,
    parallax_systematic,
)


def test_the_default_is_the_published_covariance_at_zero_separation():
    # Maiz Apellaniz et al. (2021): 106.2 uas^2.
    assert PARALLAX_SYSTEMATIC.to_value(u.uas) == pytest.approx(106.2**0.5, abs=0.01)


def test_offsets_convolve_the_parallax_with_the_prior():
    rng = np.random.default_rng(1)
    d = 1000.0 / rng.normal(0.5, 0.002, size=(2, 4000))  # statistical draws
    total = distance_with_offset(d, 0.01, seed=3)
    assert total.shape == d.shape
    plx = 1000.0 / total
    # The parallax's spread: statistical and systematic in quadrature, and
    # its distribution the convolution of both Gaussians.
    want = stats.norm(0.5, np.hypot(0.002, 0.01))
    assert abs(np.std(plx) / want.std() - 1) < 0.02
    assert stats.kstest(plx.ravel(), want.cdf).pvalue > 0.01
    # The offsets are paired with the draws at random, not by their order.
    offsets = 1000.0 / d - plx
    assert abs(np.corrcoef(offsets.ravel(), d.ravel())[0, 1]) < 0.05
    # Without a systematic the draws come back unchanged.
    np.testing.assert_array_equal(distance_with_offset(d, 0.0, seed=3), d)


def test_a_parallax_within_reach_of_the_offset_leaves_d_unbounded():
    d = np.full(1000, 1000.0 / 0.02)  # 0.02 mas: two sigma of a 0.01 offset
    total = distance_with_offset(d, 0.01, seed=0)
    share = np.mean(np.isnan(total))
    assert share == pytest.approx(stats.norm.sf(2.0), abs=0.002)


@pytest.mark.parametrize(
    ("value", "want"),
    [(None, 0.0), (0, 0.0), (10.3 * u.uas, 0.0103), (0.02 * u.mas, 0.02)],
)
def test_the_systematic_takes_an_angle_or_nothing(value, want):
    assert parallax_systematic(value) == pytest.approx(want)


@pytest.mark.parametrize(
    ("value", "match"),
    [(0.01, "needs a unit"), (-0.01 * u.mas, "non-negative"), (1 * u.pc, "an angle")],
)
def test_a_bad_systematic_is_named(value, match):
    with pytest.raises(InputError, match=match):
        ClusterDistance(parallax_systematic=value)


@pytest.mark.filterwarnings("ignore:the cluster fit may not:gaiadist.GaiadistWarning")
def test_parallax_error_scale_is_the_same_fit_with_larger_errors():
    # Short chains (the comparison needs no convergence, only the same draws).
    rng = np.random.default_rng(4)
    n = 400
    member = rng.random(n) < 0.4
    r = np.where(member, rng.normal(1000, 5, n), rng.gamma(3, 400, n))
    err = rng.uniform(0.05, 0.3, n)
    stars = QTable(
        {
            "parallax_corrected": (1000 / r + err * rng.normal(size=n)) * u.mas,
            "parallax_error": err * u.mas,
        }
    )
    settings = {"seed": 1, "num_warmup": 100, "num_samples": 100}
    scaled = ClusterDistance(parallax_error_scale=1.3).fit(stars, **settings)
    wider = stars.copy()
    wider["parallax_error"] *= 1.3
    plain = ClusterDistance().fit(wider, **settings)
    np.testing.assert_allclose(scaled.samples["log_D"], plain.samples["log_D"])
    np.testing.assert_allclose(scaled.table["p_member"], plain.table["p_member"])
    # The table keeps the catalogue's errors; meta records the factor.
    assert np.all(scaled.table["parallax_error"] == stars["parallax_error"])
    meta = scaled.table.meta["gaiadist"]["cluster_distance"]
    assert meta["parallax_error_scale"] == 1.3


@pytest.mark.parametrize("value", [0, -1.0, np.nan, "big"])
def test_a_bad_error_scale_is_named(value):
    with pytest.raises(InputError, match="parallax_error_scale"):
        ClusterDistance(parallax_error_scale=value)
