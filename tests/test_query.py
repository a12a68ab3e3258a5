"""query_cone: ADQL, cache and errors offline; rows from a real TAP server.

The server tests need a TAP service holding ../shared/data/m67_gaiadr3.fits.gz
as gaiadr3.gaia_source, at the URL in the environment variable
GAIADIST_TEST_TAP_URL. CI starts one (GAVO DaCHS, see .ci/dachs/); elsewhere
they skip.
"""

import os
import re
import time
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import QTable
from astropy.time import Time

from gaiadist import GaiadistWarning, InputError, ServiceError, query_cone
from gaiadist.query import DEFAULT_COLUMNS, GAIA_EPOCH, conf

TAP_URL = os.environ.get("GAIADIST_TEST_TAP_URL")
M67 = SkyCoord(132.846 * u.deg, 11.814 * u.deg)
# Columns of the M67 file, the table the test server holds.
FILE_COLUMNS = [
    "source_id",
    "ra",
    "dec",
    "parallax",
    "parallax_error",
    "phot_g_mean_mag",
    "bp_rp",
    "nu_eff_used_in_astrometry",
    "pseudocolour",
    "ecl_lat",
    "astrometric_params_solved",
]
needs_server = pytest.mark.skipif(
    TAP_URL is None, reason="no local TAP server (GAIADIST_TEST_TAP_URL unset)"
)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path):
    with conf.set_temp("cache_dir", str(tmp_path / "cache")):
        yield tmp_path / "cache"


def _circle(adql):
    match = re.search(r"CIRCLE\('ICRS', ([-\d.]+), ([-\d.]+), ([-\d.]+)\)", adql)
    return tuple(float(x) for x in match.groups())


def test_payload_is_plain_adql_with_default_columns_and_radius():
    adql = query_cone(M67, 30 * u.arcmin, get_query_payload=True)
    assert adql.startswith("SELECT source_id, ra, dec, parallax, parallax_error")
    assert " FROM gaiadr3.gaia_source WHERE " in adql
    selected = adql.split(" FROM ")[0].removeprefix("SELECT ").split(", ")
    assert selected == list(DEFAULT_COLUMNS)
    ra, dec, radius = _circle(adql)
    assert ra == pytest.approx(132.846, abs=1e-10)
    assert dec == pytest.approx(11.814, abs=1e-10)
    assert radius == pytest.approx(0.5, abs=1e-10)


def test_centre_with_proper_motion_is_moved_to_gaia_epoch():
    # A fast mover: Barnard's star at J2000 (Hipparcos), 10 arcsec/yr.
    star = SkyCoord(
        ra=269.45207511 * u.deg,
        dec=4.69339088 * u.deg,
        pm_ra_cosdec=-798.58 * u.mas / u.yr,
        pm_dec=10328.12 * u.mas / u.yr,
        obstime=Time("J2000"),
    )
    ra, dec, _ = _circle(query_cone(star, 1 * u.arcmin, get_query_payload=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = star.apply_space_motion(new_obstime=GAIA_EPOCH)
    moved = SkyCoord(ra * u.deg, dec * u.deg)
    assert moved.separation(expected).to(u.mas) < 1 * u.mas
    # 16 years at 10.36 arcsec/yr.
    assert moved.separation(star).to(u.arcsec).value == pytest.approx(165.8, abs=0.5)


def test_other_frames_and_ra_dec_pairs_give_icrs_centres():
    galactic = M67.galactic
    ra, dec, _ = _circle(query_cone(galactic, 1 * u.deg, get_query_payload=True))
    assert SkyCoord(ra * u.deg, dec * u.deg).separation(M67) < 1 * u.mas
    pair = query_cone(
        (132.846 * u.deg, 11.814 * u.deg), 2 * u.arcmin, get_query_payload=True
    )
    assert _circle(pair)[2] == pytest.approx(2 / 60, abs=1e-10)


def test_columns_replace_or_add_and_row_limit_sets_top():
    adql = query_cone(
        M67, 1 * u.deg, columns=["source_id", "ruwe"], get_query_payload=True
    )
    assert adql.startswith("SELECT source_id, ruwe FROM ")
    adql = query_cone(
        M67,
        1 * u.deg,
        columns=["+radial_velocity"],
        row_limit=100,
        get_query_payload=True,
    )
    assert adql.startswith("SELECT TOP 101 source_id, ra,")
    assert adql.split(" FROM ")[0].endswith(", ruwe, radial_velocity")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"columns": ["parallax; DROP TABLE x"]}, "not a plain identifier"),
        ({"columns": ["ra", "+dec"]}, "either replaces"),
        ({"columns": []}, "columns is empty"),
        ({"table": "gaiadr3.gaia_source WHERE 1=1 --"}, "not a plain identifier"),
        ({"table": "a.b.c.d"}, "schema.table"),
        ({"row_limit": 0}, "row_limit"),
        ({"row_limit": 2.5}, "row_limit"),
    ],
)
def test_unsafe_or_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        query_cone(M67, 1 * u.deg, get_query_payload=True, **kwargs)


@pytest.mark.parametrize(
    "radius, message",
    [(0.5, "angle Quantity"), (3 * u.pc, "must be an angle"), (-1 * u.deg, "(0, 180]")],
)
def test_radius_must_be_a_positive_angle(radius, message):
    with pytest.raises(InputError, match=re.escape(message)):
        query_cone(M67, radius, get_query_payload=True)


def test_bad_target_is_a_clear_error():
    with pytest.raises(InputError, match="target must be"):
        query_cone(42, 1 * u.deg, get_query_payload=True)
    with pytest.raises(InputError, match="angle Quantities"):
        query_cone((1 * u.m, 2 * u.m), 1 * u.deg, get_query_payload=True)


def _assert_quick_service_error(tap_url, match, cache_dir):
    start = time.monotonic()
    with pytest.raises(ServiceError, match=match) as info:
        query_cone(M67, 1 * u.arcmin, tap_url=tap_url, timeout=10)
    assert time.monotonic() - start < 20
    assert tap_url in str(info.value)
    # The error is gaiadist's own, not chained to the HTTP stack's.
    assert info.value.__cause__ is None and info.value.__suppress_context__
    # A failed query leaves nothing in the cache.
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def test_unreachable_service_is_a_clear_error_and_caches_nothing(cache_dir):
    _assert_quick_service_error(
        "https://gaia.tap.invalid/tap", "host name could not be resolved", cache_dir
    )
    _assert_quick_service_error(
        "http://127.0.0.1:9/tap", "connection failed", cache_dir
    )


def test_cached_result_is_returned_without_the_network(cache_dir):
    # Put a result in the cache under the key of a query to an unreachable
    # service: the re-run must come from the disk, with units and exact ids.
    url = "https://gaia.tap.invalid/tap"
    from gaiadist.query import _cache_path

    adql = query_cone(M67, 1 * u.arcmin, get_query_payload=True)
    stored = QTable(
        {
            "source_id": np.array([604911199788235648, 2**63 - 1], dtype=np.int64),
            "parallax": [1.1, 1.2] * u.mas,
        }
    )
    path = _cache_path(url, adql)
    path.parent.mkdir(parents=True)
    stored.write(path, format="ascii.ecsv")
    got = query_cone(M67, 1 * u.arcmin, tap_url=url)
    assert got["source_id"].dtype == np.int64
    np.testing.assert_array_equal(got["source_id"], stored["source_id"])
    assert got["parallax"].unit == u.mas
    # cache=False goes to the service, which is unreachable.
    with pytest.raises(ServiceError):
        query_cone(M67, 1 * u.arcmin, tap_url=url, cache=False, timeout=10)


@needs_server
@pytest.mark.parametrize("radius", [3 * u.arcmin, 0.25 * u.deg])
def test_cone_from_local_tap_server_matches_the_file(m67, radius, cache_dir):
    got = query_cone(M67, radius, columns=FILE_COLUMNS, tap_url=TAP_URL)
    assert got.colnames == FILE_COLUMNS
    assert got["source_id"].dtype == np.int64
    assert got["parallax"].unit == u.mas and got["ra"].unit == u.deg
    assert got.meta["tap_url"] == TAP_URL
    # The same cone selected directly from the file with astropy; stars
    # within 1e-6 deg of the edge may fall either way.
    sep = SkyCoord(m67["ra"], m67["dec"]).separation(M67).deg
    inside = set(m67["source_id"][sep < radius.to_value(u.deg) - 1e-6])
    edge = set(m67["source_id"][np.abs(sep - radius.to_value(u.deg)) <= 1e-6])
    ids = set(got["source_id"].tolist())
    assert inside <= ids and ids - inside <= edge
    assert len(got) > 50
    # Values come back exactly, row by row.
    order = np.argsort(m67["source_id"])
    rows = order[np.searchsorted(m67["source_id"][order], got["source_id"])]
    np.testing.assert_array_equal(got["parallax"], m67["parallax"][rows])
    # The second call comes from the cache, identical, without the service.
    again = query_cone(M67, radius, columns=FILE_COLUMNS, tap_url=TAP_URL)
    np.testing.assert_array_equal(again["source_id"], got["source_id"])
    assert len(list(cache_dir.iterdir())) == 1


@needs_server
def test_local_server_row_limit_and_refused_column():
    with pytest.warns(GaiadistWarning, match="truncated"):
        got = query_cone(
            M67, 0.25 * u.deg, columns=FILE_COLUMNS, tap_url=TAP_URL, row_limit=20
        )
    assert len(got) == 20
    with pytest.raises(ServiceError, match="refused the query.*nosuch"):
        query_cone(M67, 3 * u.arcmin, columns=["source_id", "nosuch"], tap_url=TAP_URL)


@pytest.mark.remote_data
def test_gaia_archive_cone():
    got = query_cone(M67, 2 * u.arcmin, cache=False)
    assert set(DEFAULT_COLUMNS) <= set(got.colnames)
    assert got["source_id"].dtype == np.int64
    assert 100 < len(got) < 2000
    assert got["parallax"].unit == u.mas
