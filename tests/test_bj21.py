"""The Bailer-Jones et al. (2021) prior: pixels, shipped table, posteriors."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from scipy import stats

from gaiadist import DistanceFlag, StarDistance
from gaiadist.bj21 import N_PIXELS, bj21_prior, bj21_prior_table, healpix5
from gaiadist.exceptions import GaiadistWarning, InputError
from gaiadist.posterior import distance_quantiles

from .reference import brute_force_quantiles_many

SHARED_TABLE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "bj21"
    / "prior_summary.csv.gz"
)


def test_pixel_is_the_top_bits_of_source_id():
    # One source per pixel: the pixel's number in the top bits, anything below.
    rng = np.random.default_rng(3)
    pixels = np.arange(N_PIXELS, dtype=np.int64)
    low = rng.integers(0, 2**49, N_PIXELS, dtype=np.int64)
    got, ok = healpix5(pixels * 2**49 + low)
    assert ok.all() and np.array_equal(got, pixels)
    # The documented formula, in Python's exact integers, on a real source.
    sid = 598694977656708224  # a star of the M67 field
    assert healpix5(np.array([sid]))[0][0] == sid // (2**35 * 4**7) == 1063


def test_unusable_source_ids_are_flagged_not_guessed():
    ids = np.ma.array([5, -1, N_PIXELS * 2**49, 7], mask=[False, False, False, True])
    pixel, ok = healpix5(ids)
    assert ok.tolist() == [True, False, False, False]
    assert pixel.tolist() == [0, -1, -1, -1]
    with pytest.raises(TypeError, match="integers"):
        healpix5(np.array([5.0e17]))


def test_shipped_table_is_the_authors_values():
    if not SHARED_TABLE.exists():
        pytest.skip(f"{SHARED_TABLE} not found")
    theirs = Table.read(SHARED_TABLE, format="ascii.csv")
    ours = bj21_prior_table()
    for name in ("healpix", "GGDrlen", "GGDalpha", "GGDbeta", "GGDmedian"):
        assert np.array_equal(np.asarray(ours[name]), np.asarray(theirs[name])), name
    assert "AJ 161, 147" in ours.meta["citation"]


def test_prior_median_is_the_tables():
    table = bj21_prior_table()
    alpha, beta = np.asarray(table["GGDalpha"]), np.asarray(table["GGDbeta"])
    length, median = np.asarray(table["GGDrlen"]), np.asarray(table["GGDmedian"])
    # scipy's generalised gamma: r = L * x**(1/alpha), x ~ Gamma((beta+1)/alpha).
    exact = stats.gengamma((beta + 1) / alpha, alpha, scale=length).median()
    assert np.max(np.abs(exact / median - 1)) < 1e-4
    # And the package's quadrature gives it when the parallax says nothing,
    # within its accuracy (1.3e-4 at worst with 16 nodes per segment; the
    # posterior quantiles' requirement is 1e-3).
    prior = distance_quantiles(
        np.zeros(N_PIXELS),
        np.full(N_PIXELS, 1e9),
        alpha=alpha,
        beta=beta,
        length_scale=length,
    )[:, 1]
    assert np.max(np.abs(prior / median - 1)) < 2e-4


def test_every_pixel_matches_a_brute_force_posterior():
    # One star per pixel: parallax / error from 0.1 to 1000, a fifth of them
    # negative, errors 0.01-1 mas.
    table = bj21_prior_table()
    alpha, beta = np.asarray(table["GGDalpha"]), np.asarray(table["GGDbeta"])
    length = np.asarray(table["GGDrlen"])
    assert alpha.min() < 0.18 and length.min() < 1e-6  # the hard pixels are in
    rng = np.random.default_rng(21)
    snr = 10 ** rng.uniform(-1, 3, N_PIXELS)
    snr[rng.random(N_PIXELS) < 0.2] *= -1
    snr[:4] = [0.1, -0.1, 1000.0, -1000.0]
    err = 10 ** rng.uniform(-2, 0, N_PIXELS)
    sid = np.arange(N_PIXELS, dtype=np.int64) * 2**49 + 12345
    stars = Table(
        {"source_id": sid, "parallax_corrected": snr * err, "parallax_error": err}
    )
    got = StarDistance(prior="bj21").fit(stars)
    got = np.stack([np.asarray(got[c]) for c in ("r_lo", "r_med", "r_hi")], axis=1)
    ref = brute_force_quantiles_many(snr * err, err, alpha, beta, length)
    rel = np.abs(got / ref - 1)
    worst = np.argmax(rel.max(axis=1))
    assert rel.max() < 1e-3, (
        f"pixel {worst}: plx {snr[worst] * err[worst]}, err {err[worst]}: "
        f"{got[worst]} vs {ref[worst]}"
    )


def test_star_distance_takes_the_prior_from_source_id():
    sid = np.array([598694977656708224, 5, 598694977656708224], dtype=np.int64)
    stars = Table(
        {
            "source_id": np.ma.array(sid, mask=[False, False, True]),
            "parallax": [1.2, 0.5, 1.2],
            "parallax_error": [0.3, 0.2, 0.3],
        }
    )
    with pytest.warns(GaiadistWarning) as caught:
        out = StarDistance(prior="bj21").fit(stars)
    text = " ".join(str(w.message) for w in caught)
    # No zero point inputs: the global offset, as Bailer-Jones et al. did.
    assert "-0.017 mas" in text and "1 of 3 rows cannot be used" in text
    assert np.allclose(out["zpt"].value, -0.017)
    assert out["r_flag"].tolist() == [0, 0, DistanceFlag.NO_PIXEL]
    assert out["source_id"].dtype == np.int64 and out.colnames[:3] == stars.colnames
    prior = bj21_prior(sid[:2])
    want = distance_quantiles(
        [1.217, 0.517],
        [0.3, 0.2],
        alpha=prior["alpha"],
        beta=prior["beta"],
        length_scale=prior["length_scale"],
    )
    assert np.allclose(out["r_med"].value[:2], want[:, 1], rtol=1e-6)
    assert out.meta["gaiadist"]["star_distance"]["prior"] == "bj21"


def test_a_users_own_zero_point_is_kept(m67):
    table = m67[:200]
    table["parallax_corrected"] = table["parallax"] + 0.03
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = StarDistance(prior="bj21").fit(table)
    assert "zpt" not in out.colnames and (out["r_flag"] == 0).all()
    # Without it, the Lindegren et al. zero point is applied and kept.
    with pytest.warns(GaiadistWarning, match="outside the calibration"):
        own = StarDistance(prior="bj21").fit(m67[:200])
    assert "zpt" in own.colnames and not np.allclose(own["r_med"], out["r_med"])


def test_bj21_refuses_settings_it_does_not_take():
    for kwargs in ({"alpha": 1.0}, {"length_scale": "r_len"}):
        with pytest.raises(InputError, match="bj21"):
            StarDistance(prior="bj21", **kwargs)
    with pytest.raises(InputError, match="source_id"):
        StarDistance(prior="bj21").fit(
            Table({"parallax_corrected": [1.0], "parallax_error": [0.1]})
        )
    with pytest.raises(InputError, match="integers"):
        StarDistance(prior="bj21").fit(
            Table(
                {
                    "source_id": [5.0e17],
                    "parallax_corrected": [1.0],
                    "parallax_error": [0.1],
                }
            )
        )
