import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable, Table
from zero_point import zpt as lindegren

from gaiadist import GaiadistWarning, InputError, apply_zeropoint
from gaiadist.zeropoint import GLOBAL_ZEROPOINT, ZeroPointFlag

lindegren.load_tables()

INPUTS = [
    "phot_g_mean_mag",
    "nu_eff_used_in_astrometry",
    "pseudocolour",
    "ecl_lat",
    "astrometric_params_solved",
]


def _raw(table, name):
    col = table[name]
    return np.asarray(col.filled(np.nan) if hasattr(col, "filled") else col, float)


def _expected_validity(t):
    g, nu, pc = (_raw(t, n) for n in INPUTS[:3])
    aps = _raw(t, "astrometric_params_solved")
    with np.errstate(invalid="ignore"):
        return ((g > 6) & (g < 21)) & (
            ((aps == 31) & (nu > 1.1) & (nu < 1.9))
            | ((aps == 95) & (pc > 1.24) & (pc < 1.72))
        )


def test_m67_matches_gaiadr3_zeropoint_called_directly(m67):
    with pytest.warns(GaiadistWarning, match=r"706 of 5331 sources") as record:
        out = apply_zeropoint(m67)
    assert len(record) == 1
    valid = _expected_validity(m67)
    assert valid.sum() == 5331 - 706
    np.testing.assert_array_equal(out["zpt_valid"], valid)
    np.testing.assert_array_equal(out["zpt_flag"] == 0, valid)

    # The reference: the recipe itself, called on every source it can take,
    # which outside its range returns its value at the edge.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = lindegren.get_zpt(*(_raw(m67, n) for n in INPUTS))
    finite = np.isfinite(direct)
    assert (~finite).sum() == 1  # the source without a G magnitude
    np.testing.assert_array_equal(out["zpt"][finite], direct[finite])
    # ... and where it gives nothing, the global offset of Lindegren et al.
    assert out["zpt"][~finite] == GLOBAL_ZEROPOINT == -0.017
    assert out["zpt_flag"][~finite] == ZeroPointFlag.MISSING_INPUT
    assert out["zpt"].unit == u.mas and out["parallax_corrected"].unit == u.mas
    np.testing.assert_allclose(
        out["parallax_corrected"], _raw(m67, "parallax") - out["zpt"], rtol=0, atol=0
    )
    # Typical DR3 zero points are a few tens of microarcseconds, negative.
    assert -0.05 < np.median(direct[valid]) < -0.01


def test_strict_leaves_the_sources_outside_the_calibration_uncorrected(m67):
    with pytest.warns(GaiadistWarning, match="NaN"):
        out = apply_zeropoint(m67, strict=True)
    with pytest.warns(GaiadistWarning):
        default = apply_zeropoint(m67)
    valid = _expected_validity(m67)
    np.testing.assert_array_equal(out["zpt"][valid], default["zpt"][valid])
    assert np.all(np.isnan(out["zpt"][~valid]))
    assert np.all(np.isnan(out["parallax_corrected"][~valid]))
    assert out.meta["gaiadist"]["zeropoint"]["outside_calibration"] == "NaN (strict)"


def test_input_is_untouched_and_columns_and_rows_kept(m67):
    before = m67.copy()
    with pytest.warns(GaiadistWarning):
        out = apply_zeropoint(m67)
    assert m67.colnames == before.colnames and "zpt" not in m67.colnames
    added = ["zpt", "parallax_corrected", "zpt_valid", "zpt_flag"]
    assert out.colnames == m67.colnames + added
    assert out["source_id"].dtype.kind == "i" and out["source_id"].dtype.itemsize == 8
    np.testing.assert_array_equal(out["source_id"], before["source_id"])
    assert type(out) is Table


def test_inplace_adds_columns_to_the_same_table(m67):
    with pytest.warns(GaiadistWarning):
        out = apply_zeropoint(m67, inplace=True)
    assert out is m67 and "parallax_corrected" in m67.colnames


def _small(**overrides):
    data = {
        "source_id": np.array([1, 2, 3, 4, 5, 6], dtype=np.int64),
        "parallax": [1.0, 2.0, 0.5, 1.5, 0.8, 1.2],
        "phot_g_mean_mag": [15.0, 12.0, 22.0, 14.0, np.nan, 16.0],
        "nu_eff_used_in_astrometry": [1.5, np.nan, 1.5, 1.5, 1.5, 1.5],
        "pseudocolour": [np.nan, 1.5, np.nan, np.nan, np.nan, np.nan],
        "ecl_lat": [10.0, -30.0, 5.0, 60.0, 10.0, 10.0],
        "astrometric_params_solved": [31, 95, 31, 3, 31, 31],
    }
    data.update(overrides)
    return Table(data)


def test_two_parameter_out_of_range_and_missing_inputs_are_flagged():
    t = _small()
    with pytest.warns(GaiadistWarning) as record:
        out = apply_zeropoint(t)
    assert len(record) == 1  # one summary warning, not one per source
    message = str(record[0].message)
    assert "3 of 6 sources" in message
    assert "1 without a 5- or 6-parameter solution" in message
    assert "1 with missing inputs" in message
    assert "1 with magnitude or colour out of range" in message
    np.testing.assert_array_equal(
        out["zpt_valid"], [True, True, False, False, False, True]
    )
    flag = ZeroPointFlag
    np.testing.assert_array_equal(
        out["zpt_flag"],
        [0, 0, flag.MAGNITUDE_RANGE, flag.NO_SOLUTION, flag.MISSING_INPUT, 0],
    )
    # Out of range: the recipe's value at G = 21; not computable: -0.017 mas.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g21, g22, nu, pc, lat, aps = (np.array([v]) for v in (21, 22, 1.5, 0, 5, 31))
        edge = lindegren.get_zpt(g21, nu, pc, lat, aps)[0]
        assert edge == lindegren.get_zpt(g22, nu, pc, lat, aps)[0]
    assert out["zpt"][2] == edge
    assert list(out["zpt"][3:5]) == [-0.017, -0.017]
    good = np.array([0, 1, 5])
    direct = lindegren.get_zpt(*(np.asarray(t[n], float)[good] for n in INPUTS))
    np.testing.assert_array_equal(out["zpt"][good], direct)


def test_units_are_converted_and_qtable_comes_back_as_qtable():
    plain = _small()
    with pytest.warns(GaiadistWarning):
        ref = apply_zeropoint(plain)
    q = QTable(plain)
    q["parallax"] = (np.asarray(plain["parallax"]) * u.mas).to(u.arcsec)
    q["ecl_lat"] = (np.asarray(plain["ecl_lat"]) * u.deg).to(u.rad)
    q["nu_eff_used_in_astrometry"] = (
        np.asarray(plain["nu_eff_used_in_astrometry"]) / u.um
    )
    with pytest.warns(GaiadistWarning):
        out = apply_zeropoint(q)
    assert type(out) is QTable
    np.testing.assert_allclose(out["zpt"].to_value(u.mas), ref["zpt"], rtol=1e-12)
    np.testing.assert_allclose(
        out["parallax_corrected"].to_value(u.mas),
        ref["parallax_corrected"],
        rtol=1e-12,
    )


def test_masked_inputs_count_as_missing():
    t = _small()
    t = Table(t, masked=True)
    t["phot_g_mean_mag"].mask[0] = True
    t["phot_g_mean_mag"][4] = 13.0
    # Row 0 keeps a valid G under its mask; row 4 now has a real G.
    with pytest.warns(GaiadistWarning, match="1 with missing inputs"):
        out = apply_zeropoint(t)
    assert not out["zpt_valid"][0] and out["zpt"][0] == GLOBAL_ZEROPOINT
    assert out["zpt_valid"][4] and out["zpt"][4] != GLOBAL_ZEROPOINT


def test_bad_input_gives_clear_errors():
    with pytest.raises(InputError, match="no column 'pseudocolour'"):
        apply_zeropoint(_small().copy()[["parallax"] + INPUTS[:2] + INPUTS[3:]])
    with pytest.raises(InputError, match="empty"):
        apply_zeropoint(_small()[:0])
    bad = QTable(_small())
    bad["parallax"] = np.asarray(bad["parallax"]) * u.pc
    with pytest.raises(InputError, match=r"'parallax' is in pc"):
        apply_zeropoint(bad)
