"""The proper motion peak: where a cluster is, on simulated and real fields."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from gaiadist import read_gaia
from gaiadist.peak import proper_motion_peak
from gaiadist.simulate import cluster_field

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
        guess = proper_motion_peak(stars)
        spread = np.hypot(row["s_pmra"], row["s_pmdec"])
        offset = np.hypot(guess.pmra - row["pmra"], guess.pmdec - row["pmdec"])
        assert offset < max(2 * spread, 0.3), (row["name"], guess)
        # HR23's mean parallax, like this one, has no zero point correction.
        assert abs(guess.parallax - row["plx"]) < 0.03, (row["name"], guess)
