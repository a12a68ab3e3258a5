import astropy.units as u
import numpy as np
import pytest
from astropy.table import MaskedColumn, QTable, Table

from gaiadist import (
    DistanceFlag,
    GaiadistWarning,
    GeneralizedGamma,
    InputError,
    StarDistance,
    apply_zeropoint,
)

from .reference import brute_force_quantiles


def _stars():
    return Table(
        {
            "source_id": np.array(
                [4295806720, 2**62 + 12345, 598694977656708224, 7], dtype=np.int64
            ),
            "parallax_corrected": [1.2, 0.3, -0.4, 5.0] * u.mas,
            "parallax_error": [0.05, 0.4, 0.3, 0.02] * u.mas,
            "label": ["a", "b", "c", "d"],
        }
    )


def test_fit_returns_every_row_and_column_with_units():
    t = _stars()
    out = StarDistance(length_scale=1.35 * u.kpc).fit(t)
    assert out.colnames == t.colnames + ["r_med", "r_lo", "r_hi", "r_flag"]
    assert out is not t and "r_med" not in t.colnames
    assert out["source_id"].dtype == np.int64
    np.testing.assert_array_equal(out["source_id"], t["source_id"])  # exact
    assert list(out["label"]) == ["a", "b", "c", "d"]
    for name in ("r_med", "r_lo", "r_hi"):
        assert out[name].unit == u.pc
    assert np.all(out["r_flag"] == 0)
    ref = np.array(
        [
            brute_force_quantiles(p, e, 1.0, 2.0, 1350.0)
            for p, e in zip(t["parallax_corrected"], t["parallax_error"], strict=True)
        ]
    )
    got = np.column_stack([out["r_lo"], out["r_med"], out["r_hi"]])
    np.testing.assert_allclose(got, ref, rtol=1e-3)
    meta = out.meta["gaiadist"]["star_distance"]
    assert meta["prior"] == "edsd" and meta["length_scale_pc"] == 1350.0
    assert meta["parallax_column"] == "parallax_corrected"
    assert "numpyro" in meta["versions"]


def test_qtable_in_qtable_out_and_units_converted():
    t = _stars()
    ref = StarDistance(length_scale=1350.0 * u.pc).fit(t)
    q = QTable(t)
    q["parallax_corrected"] = q["parallax_corrected"].to(u.uas)
    q["parallax_error"] = q["parallax_error"].to(u.arcsec)
    out = StarDistance(length_scale=1.35 * u.kpc).fit(q)
    assert type(out) is QTable
    assert out["r_med"].unit == u.pc
    np.testing.assert_allclose(out["r_med"].to_value(u.pc), ref["r_med"], rtol=1e-6)


def test_unitless_columns_are_taken_in_mas():
    t = _stars()
    plain = Table({k: np.asarray(t[k]) for k in t.colnames})
    out = StarDistance(length_scale=1350.0 * u.pc).fit(plain)
    ref = StarDistance(length_scale=1350.0 * u.pc).fit(t)
    np.testing.assert_allclose(out["r_med"], ref["r_med"], rtol=1e-12)


def test_bad_rows_are_flagged_not_dropped():
    t = _stars()
    t["parallax_corrected"] = MaskedColumn(
        [1.2, np.nan, -0.4, 5.0], unit=u.mas, mask=[False, False, True, False]
    )
    t["parallax_error"] = [0.05, 0.4, 0.3, 0.0] * u.mas
    with pytest.warns(GaiadistWarning, match="3 of 4 rows cannot be used"):
        out = StarDistance().fit(t)
    assert len(out) == 4
    assert list(out["r_flag"]) == [
        0,
        DistanceFlag.NO_PARALLAX,
        DistanceFlag.NO_PARALLAX,
        DistanceFlag.BAD_ERROR,
    ]
    assert np.isfinite(out["r_med"][0]) and np.all(np.isnan(out["r_med"][1:]))


def test_plain_parallax_is_used_with_a_warning():
    t = _stars()
    t.rename_column("parallax_corrected", "parallax")
    with pytest.warns(GaiadistWarning, match="no parallax zero point was applied"):
        out = StarDistance().fit(t)
    assert out.meta["gaiadist"]["star_distance"]["parallax_column"] == "parallax"


def test_bad_input_gives_clear_errors():
    t = _stars()
    with pytest.raises(InputError, match="empty"):
        StarDistance().fit(t[:0])
    with pytest.raises(InputError, match="no column 'parallax_error'"):
        StarDistance().fit(t[["source_id", "parallax_corrected"]])
    t["parallax_error"] = [1, 1, 1, 1] * u.pc
    with pytest.raises(InputError, match="'parallax_error' is in pc"):
        StarDistance().fit(t)
    with pytest.raises(InputError, match="length_scale is in mas"):
        StarDistance(length_scale=3 * u.mas)
    with pytest.raises(InputError, match="positive length"):
        StarDistance(length_scale=-1 * u.kpc)
    # A plain number would be a guess at the unit (it used to be taken as pc).
    for plain in (1.35, [300.0, 900.0], np.array([1.0])):
        with pytest.raises(InputError, match="length_scale needs a unit"):
            StarDistance(length_scale=plain)
    with pytest.raises(InputError, match="needs both alpha and beta"):
        StarDistance(prior="ggd", alpha=1.0)
    with pytest.raises(InputError, match="method must be"):
        StarDistance(method="mcmc")
    with pytest.raises(InputError, match="a scalar or one value per star"):
        StarDistance(length_scale=np.ones((2, 2)) * u.kpc)
    with pytest.raises(InputError, match="4 rows"):
        StarDistance(length_scale=[1, 2] * u.kpc).fit(_stars())


def test_per_star_length_scale_from_a_column_or_array():
    t = _stars()
    t["L"] = [300, 900, 2500, 5000] * u.pc
    from_col = StarDistance(length_scale="L").fit(t)
    from_arr = StarDistance(length_scale=t["L"].quantity.to(u.kpc)).fit(t)
    np.testing.assert_allclose(from_col["r_med"], from_arr["r_med"], rtol=1e-12)
    for i, length in enumerate([300, 900, 2500, 5000]):
        one = StarDistance(length_scale=length * u.pc).fit(t[i : i + 1])
        np.testing.assert_allclose(from_col["r_med"][i], one["r_med"][0], rtol=1e-6)


def test_generalized_gamma_prior_by_name_or_object():
    t = _stars()
    by_name = StarDistance(
        prior="ggd", alpha=1.5, beta=1.0, length_scale=900 * u.pc
    ).fit(t)
    by_obj = StarDistance(prior=GeneralizedGamma(1.5, 1.0, 900.0)).fit(t)
    np.testing.assert_allclose(by_name["r_med"], by_obj["r_med"], rtol=1e-12)
    ref = brute_force_quantiles(0.3, 0.4, 1.5, 1.0, 900.0)
    np.testing.assert_allclose(by_name["r_med"][1], ref[1], rtol=1e-3)


def test_nuts_agrees_with_quadrature_within_monte_carlo_error():
    t = _stars()
    quad = StarDistance(length_scale=1350.0 * u.pc).fit(t)
    nuts = StarDistance(length_scale=1350.0 * u.pc, method="nuts").fit(
        t, seed=1, num_warmup=500, num_samples=4000
    )
    assert nuts.meta["gaiadist"]["star_distance"]["seed"] == 1
    # Standard error of a percentile from n roughly independent draws is
    # sqrt(p (1 - p) / n) / pdf; with n = 4000 that is < 0.04 posterior
    # half-widths. Allow 0.15 (about 4 standard errors).
    half_width = 0.5 * (quad["r_hi"] - quad["r_lo"])
    for name in ("r_lo", "r_med", "r_hi"):
        diff = np.abs(nuts[name] - quad[name]) / half_width
        assert np.all(diff < 0.15), (name, diff)


def test_m67_every_usable_star_gets_a_distance(m67):
    with pytest.warns(GaiadistWarning):
        stars = apply_zeropoint(m67)
    out = StarDistance(length_scale=1.35 * u.kpc).fit(stars)
    assert len(out) == len(m67) == 5331
    assert np.all(out["r_flag"] == 0)
    assert np.all(np.isfinite(out["r_med"]))
    assert np.all((out["r_lo"] < out["r_med"]) & (out["r_med"] < out["r_hi"]))
    # Precise members of M67 (~0.83 kpc) come out at about the inverse parallax.
    good = (out["parallax_corrected"] / out["parallax_error"] > 50) & (
        np.abs(out["parallax_corrected"] - 1.19) < 0.05
    )
    assert good.sum() > 100
    inv = 1000 / np.asarray(out["parallax_corrected"][good])
    np.testing.assert_allclose(out["r_med"][good], inv, rtol=0.01)
    # And a sample of stars against the brute force.
    idx = np.linspace(0, len(out) - 1, 25).astype(int)
    for i in idx:
        ref = brute_force_quantiles(
            out["parallax_corrected"][i], out["parallax_error"][i], 1.0, 2.0, 1350.0
        )
        got = [out["r_lo"][i], out["r_med"][i], out["r_hi"][i]]
        np.testing.assert_allclose(got, ref, rtol=1e-3)


def test_fit_reads_a_file_and_never_changes_its_input(tmp_path):
    t = _stars()
    before = t.copy()
    out = StarDistance().fit(t)
    assert t.colnames == before.colnames and len(t.meta) == 0
    for name in t.colnames:
        assert np.all(t[name] == before[name])
    path = tmp_path / "stars.ecsv"
    t.write(path)
    from_file = StarDistance().fit(str(path))
    np.testing.assert_array_equal(from_file["source_id"], t["source_id"])
    np.testing.assert_allclose(from_file["r_med"], out["r_med"], rtol=1e-12)
