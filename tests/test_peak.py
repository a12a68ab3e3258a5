"""The proper motion peak: where a cluster is, on simulated and real fields."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from gaiadist import apply_zeropoint, read_gaia
from gaiadist.astrometric import astrometric_stars, footprint_of
from gaiadist.peak import (
    _profile_share,
    proper_motion_peak,
    proper_motion_peaks,
    rank_peaks,
)
from gaiadist.simulate import cluster_field
from gaiadist.stars import parallax_inputs

from .conftest import M67_PATH

CLUSTERS = M67_PATH.parent / "clusters" / "clusters.ecsv"


def test_finds_a_small_cluster_among_many_field_stars():
    # 60 members among 20,000 stars (0.3 %), at 1.5 kpc.
    stars = cluster_field(
        20000,
        distance=1500 * u.pc,
        size=5 * u.pc,
        fraction=0.003,
        proper_motion=(4.0, -6.0) * u.mas / u.yr,
        seed=2,
    )
    guess = proper_motion_peak(stars)
    assert abs(guess.pmra - 4.0) < 0.3 and abs(guess.pmdec + 6.0) < 0.3
    assert guess.significance > 5
    assert abs(guess.distance - 1500) < 150


def _ranked(table, **kwargs):
    """`rank_peaks` over 20 clumps of ``table``, and the clumps as found."""
    peaks = proper_motion_peaks(table, count=20, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stars, _ = astrometric_stars(
            table, footprint_of(table), parallax_inputs(table)[1:]
        )
    return rank_peaks(stars, peaks), peaks


def test_ranking_puts_first_a_small_cluster_the_contrast_ranks_low():
    # 30 members among 10,000 stars (900 pc, r50 3 pc, 0.19 deg of the
    # 0.5 deg cone): the contrast in proper motion alone ranks the cluster
    # 13th; with parallaxes and positions it comes first, by 4 nats.
    stars = apply_zeropoint(cluster_field(10000, fraction=0.003, seed=2))
    ranked, found = _ranked(stars, parallax="parallax_corrected")

    def at_truth(g):
        return np.hypot(g.pmra + 11.0, g.pmdec + 3.0) < 0.5

    assert not any(at_truth(g) for g in found[:3])
    assert at_truth(ranked[0]), ranked[:2]
    assert ranked[0].likelihood_ratio > ranked[1].likelihood_ratio + 2
    ratios = [g.likelihood_ratio for g in ranked]
    assert ratios == sorted(ratios, reverse=True)
    assert {(g.pmra, g.pmdec) for g in ranked} == {(g.pmra, g.pmdec) for g in found}


def test_profiled_share_is_the_maximum_over_the_share():
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(3)
    for log_ratio in (rng.normal(-2.0, 2.0, 500), np.full(50, -1.0)):
        found = _profile_share(log_ratio)
        r = np.exp(log_ratio) - 1.0
        best = minimize_scalar(
            lambda q, r=r: -np.sum(np.log1p(q * r)),
            bounds=(1e-6, 0.99),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert found == pytest.approx(-best.fun, abs=1e-6)
    # No share helps when no star favours the cluster: the ratio is ~0.
    assert abs(_profile_share(np.full(50, -1.0))) < 1e-4


def test_too_few_stars_give_no_guess():
    stars = cluster_field(4, seed=1)
    assert proper_motion_peak(stars) is None


@pytest.mark.skipif(not CLUSTERS.exists(), reason="real cluster fields not found")
def test_finds_the_published_proper_motion_and_parallax_of_every_real_cluster():
    catalogue = Table.read(CLUSTERS)
    for row in catalogue:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stars = read_gaia(CLUSTERS.parent / row["file"])
        ranked, found = _ranked(stars)
        # The contrast's first clump (`proper_motion_peak`), and the
        # ranking's, which the fit starts from, are the cluster.
        for guess in (found[0], ranked[0]):
            spread = np.hypot(row["s_pmra"], row["s_pmdec"])
            offset = np.hypot(guess.pmra - row["pmra"], guess.pmdec - row["pmdec"])
            assert offset < max(2 * spread, 0.3), (row["name"], guess)
            # HR23's mean parallax, like this one, has no zero point correction.
            assert abs(guess.parallax - row["plx"]) < 0.03, (row["name"], guess)
