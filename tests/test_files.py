"""read_gaia: local Gaia tables in every format, in gaiadist's conventions."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable, Table

from gaiadist import GaiadistWarning, InputError, StarDistance, apply_zeropoint
from gaiadist.columns import read_gaia, write_table

from .conftest import M67_PATH

# (extension, astropy writer format, whether the format keeps units)
FORMATS = [
    ("fits", "fits", True),
    ("vot", "votable", True),
    ("ecsv", "ascii.ecsv", True),
    ("csv", "ascii.csv", False),
    ("csv.gz", "ascii.csv", False),
    ("parquet", "parquet", False),
]


@pytest.fixture
def sample(m67):
    return m67[:300]


@pytest.mark.parametrize("ext, fmt, keeps_units", FORMATS)
def test_every_format_reads_back_with_units_and_exact_ids(
    sample, tmp_path, ext, fmt, keeps_units
):
    out = Table(sample, copy=True)
    if not keeps_units:
        for col in out.columns.values():
            col.unit = None
    path = tmp_path / f"stars.{ext}"
    out.write(path, format=fmt)
    got = read_gaia(path)
    assert isinstance(got, QTable)
    assert got.colnames == sample.colnames
    assert got["source_id"].dtype.kind == "i" and got["source_id"].dtype.itemsize == 8
    np.testing.assert_array_equal(got["source_id"], sample["source_id"])
    # Units come from the file, or from the archive's conventions.
    assert got["parallax"].unit == u.mas
    assert got["ra"].unit == u.deg
    assert got["nu_eff_used_in_astrometry"].unit == 1 / u.um
    np.testing.assert_array_equal(
        got["parallax"].to_value(u.mas), sample["parallax"].quantity.to_value(u.mas)
    )
    # Missing photometry stays missing (masked, or NaN where the format has
    # no masks), never a made-up number.
    g = np.ma.filled(np.ma.masked_invalid(sample["bp_rp"]), np.nan)
    back = got["bp_rp"]
    back = np.where(getattr(back, "mask", False), np.nan, np.asarray(back.value))
    np.testing.assert_array_equal(np.isnan(back), np.isnan(g))


def test_upper_case_names_are_made_archive_lower_case(tmp_path):
    table = Table(
        {
            "SOURCE_ID": np.array([2**62 + 1, 2**62 + 3], dtype=np.int64),
            "PARALLAX": [1.0, 2.0],
            "PARALLAX_ERROR": [0.1, 0.2],
        }
    )
    path = tmp_path / "upper.csv"
    table.write(path)
    got = read_gaia(path)
    assert got.colnames == ["source_id", "parallax", "parallax_error"]
    assert got["source_id"][0] == 2**62 + 1
    # And the file works as input to the rest of the package.
    with pytest.warns(GaiadistWarning, match="zero point"):
        fit = StarDistance(length_scale=1 * u.kpc).fit(str(path))
    assert fit["r_med"].unit == u.pc and len(fit) == 2


def test_float_source_id_empty_and_unreadable_files_are_clear_errors(tmp_path):
    path = tmp_path / "float.csv"
    Table({"source_id": [1.5e18, 2.5e18], "parallax": [1.0, 2.0]}).write(path)
    with pytest.raises(InputError, match="source_id .* floating point"):
        read_gaia(path)
    path = tmp_path / "empty.ecsv"
    Table({"source_id": np.array([], dtype=np.int64)}).write(path)
    with pytest.raises(InputError, match="no rows"):
        read_gaia(path)
    with pytest.raises(InputError, match="absent.fits: no such file"):
        read_gaia(tmp_path / "absent.fits")
    with pytest.raises(InputError, match="is a folder, not a table file"):
        read_gaia(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("not a table\n")
    with pytest.raises(InputError, match="cannot tell the format of .*notes.txt"):
        read_gaia(text)
    with pytest.raises(InputError, match="cannot tell which format"):
        write_table(Table({"a": [1]}), tmp_path / "out.txt")
    broken = tmp_path / "broken.fits"
    broken.write_bytes(b"SIMPLE  = garbage")
    with pytest.raises(InputError, match="cannot read a table from .*broken.fits"):
        read_gaia(broken)


CLUSTER_FILES = sorted((M67_PATH.parent / "clusters").glob("*.fits.gz"))


@pytest.fixture(scope="module")
def cluster_fields():
    if not CLUSTER_FILES:
        pytest.skip("real cluster fields not found")
    return CLUSTER_FILES


def test_metadata_survives_round_trips_of_the_real_fields(cluster_fields, tmp_path):
    """Every real field, zero point added, written and read back by gaiadist.

    The fields' FITS headers have COMMENT cards and keywords of their own;
    the provenance record is nested. Before, writing any FITS file from them
    failed in astropy ('str' object has no attribute 'append'). Each field
    goes through two of FITS, ECSV and Parquet, in turn.
    """
    formats = ["fits", "ecsv", "parquet"]
    for i, path in enumerate(cluster_fields):
        # The headers are what matters here; 300 rows keep ECSV's writer quick.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GaiadistWarning)  # zero point counts
            table = apply_zeropoint(read_gaia(path)[:300])
        assert table.meta["comments"] and "gaiadist" in table.meta
        first, second = formats[i % 3], formats[(i + 1) % 3]
        out = tmp_path / f"{path.name.split('.')[0]}.{first}"
        write_table(table, out)
        back = read_gaia(out)
        assert back.meta == table.meta, (path.name, first)
        assert back.colnames == table.colnames
        np.testing.assert_array_equal(back["source_id"], table["source_id"])
        assert back["zpt"].info.description == table["zpt"].info.description
        # A second trip, in another format, changes nothing either.
        again = tmp_path / f"again.{second}"
        write_table(back, again, overwrite=True)
        assert read_gaia(again).meta == table.meta, (path.name, second)


def test_column_keywords_of_fits_become_descriptions_not_stale_metadata(m67_path):
    m67 = read_gaia(m67_path)
    # The archive's TCOMMn/TUCDn describe columns by number: they would
    # describe the wrong columns after zpt etc. are added.
    assert not [k for k in m67.meta if k.startswith(("TCOMM", "TUCD", "TUTYP"))]
    assert m67["parallax"].info.description == "Parallax"
    assert m67["parallax"].info.meta["ucd"] == "pos.parallax.trig"
    stale = Table(m67, copy=False)
    stale.meta["TCOMM1"] = "Unique source identifier"
    assert "TCOMM1" not in _written_meta(stale, ".ecsv")


def _written_meta(table, suffix):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/t{suffix}"
        write_table(table, path)
        return QTable.read(path).meta


def test_one_provenance_record_after_a_fits_file_read_by_astropy(tmp_path):
    stars = QTable(
        {
            "source_id": np.array([1, 2], dtype=np.int64),
            "parallax_corrected": [1.0, 2.0] * u.mas,
            "parallax_error": [0.1, 0.2] * u.mas,
        }
    )
    first = StarDistance(length_scale=1 * u.kpc).fit(stars)
    write_table(first, tmp_path / "a.fits")
    plain = QTable.read(tmp_path / "a.fits")  # astropy: GAIADIST is JSON text
    assert isinstance(plain.meta["GAIADIST"], str)
    again = StarDistance(length_scale=2 * u.kpc).fit(plain)
    assert "GAIADIST" not in again.meta and "JSONMETA" not in again.meta
    assert again.meta["gaiadist"]["star_distance"]["length_scale_pc"] == 2000
    write_table(again, tmp_path / "b.fits")
    assert read_gaia(tmp_path / "b.fits").meta["gaiadist"] == again.meta["gaiadist"]
