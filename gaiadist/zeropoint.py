"""The Gaia DR3 parallax zero point of Lindegren et al. (2021)."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
from astropy.table import Table
from zero_point import zpt as _lindegren

from .columns import column_values, read_table
from .exceptions import GaiadistWarning
from .provenance import record

__all__ = ["apply_zeropoint", "ZEROPOINT_COLUMNS"]

#: Input columns the recipe needs, with the units they are converted to.
ZEROPOINT_COLUMNS = {
    "parallax": u.mas,
    "phot_g_mean_mag": u.mag,
    "nu_eff_used_in_astrometry": u.um**-1,
    "pseudocolour": u.um**-1,
    "ecl_lat": u.deg,
    "astrometric_params_solved": u.dimensionless_unscaled,
}

# Validity of the recipe (Lindegren et al. 2021, sect. 4; gaiadr3-zeropoint).
_G_RANGE = (6.0, 21.0)
_NU_EFF_RANGE = (1.1, 1.9)  # 5-parameter solutions, 1/um
_PSEUDOCOLOUR_RANGE = (1.24, 1.72)  # 6-parameter solutions, 1/um
_FIVE_PARAM, _SIX_PARAM = 31, 95

_lindegren.load_tables()


def apply_zeropoint(
    table: Table, *, inplace: bool = False, extrapolate: bool = False
) -> Table:
    """Add the Lindegren et al. (2021) parallax zero point and corrected parallax.

    Three columns are appended (or replaced if present):

    ``zpt`` (mas)
        The zero point from gaiadr3-zeropoint, 0 where the recipe does not apply.
    ``parallax_corrected`` (mas)
        ``parallax - zpt``.
    ``zpt_valid`` (bool)
        True where the source is inside the recipe's validity: a 5- or
        6-parameter solution with finite inputs, ``6 < G < 21``, and
        ``1.1 < nu_eff_used_in_astrometry < 1.9`` (5-parameter) or
        ``1.24 < pseudocolour < 1.72`` (6-parameter), all in 1/um.

    Sources outside the validity get ``zpt = 0`` and ``zpt_valid = False``,
    and one warning counts them by reason.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        Gaia DR3 sources with the columns ``parallax``, ``phot_g_mean_mag``,
        ``nu_eff_used_in_astrometry``, ``pseudocolour``, ``ecl_lat`` and
        ``astrometric_params_solved``. Columns with units are converted;
        columns without are taken in Gaia's units (mas, mag, 1/um, deg).
    inplace : bool, optional
        Add the columns to ``table`` itself instead of to a copy.
    extrapolate : bool, optional
        For sources with finite inputs whose magnitude or colour lies outside
        the recipe's range, keep the value the recipe returns there (it clamps
        the colour and magnitude to the range) instead of 0. They stay flagged
        ``zpt_valid = False``. This is what scripts that call
        ``zpt.get_zpt`` and then zero the non-finite values do, and what the
        published M67 result in gaiadist's tests used.

    Returns
    -------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        The table with the three columns, of the same class as the input, with
        every input row and column unchanged and in order.

    Raises
    ------
    InputError
        If the table is empty, or a column is missing or in a wrong unit.
    """
    table = read_table(table)
    values = {
        name: column_values(table, name, unit)
        for name, unit in ZEROPOINT_COLUMNS.items()
    }
    zpt, valid = _zeropoint(values, extrapolate=extrapolate)
    out = table if inplace else table.copy()
    out["zpt"] = zpt * u.mas
    out["parallax_corrected"] = (values["parallax"] - zpt) * u.mas
    out["zpt_valid"] = valid
    record(
        out,
        "zeropoint",
        {
            "recipe": "Lindegren et al. (2021), gaiadr3-zeropoint",
            "extrapolate": extrapolate,
            "n_valid": int(valid.sum()),
            "n_sources": len(valid),
        },
    )
    return out


def _zeropoint(values: dict, *, extrapolate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Zero point (mas) and validity flag for columns already in Gaia units."""
    g = values["phot_g_mean_mag"]
    nu_eff = values["nu_eff_used_in_astrometry"]
    pseudo = values["pseudocolour"]
    beta = values["ecl_lat"]
    solved = values["astrometric_params_solved"]

    five = solved == _FIVE_PARAM
    six = solved == _SIX_PARAM
    colour = np.where(six, pseudo, nu_eff)
    computable = (five | six) & np.isfinite(g) & np.isfinite(colour)
    computable &= np.isfinite(beta)
    in_range = _inside(g, _G_RANGE) & (
        (five & _inside(nu_eff, _NU_EFF_RANGE))
        | (six & _inside(pseudo, _PSEUDOCOLOUR_RANGE))
    )
    valid = computable & in_range

    use = computable if extrapolate else valid
    zpt = np.zeros(len(g))
    if np.any(use):
        with warnings.catch_warnings():
            # The recipe warns about out-of-range inputs; we count those ourselves.
            warnings.simplefilter("ignore", UserWarning)
            zpt[use] = _lindegren.get_zpt(
                g[use], nu_eff[use], pseudo[use], beta[use], solved[use]
            )
    _warn_invalid(five | six, computable, valid, extrapolate)
    return zpt, valid


def _inside(x: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (x > bounds[0]) & (x < bounds[1])


def _warn_invalid(solved_ok, computable, valid, extrapolate: bool) -> None:
    n_bad = int(np.sum(~valid))
    if n_bad == 0:
        return
    n_solution = int(np.sum(~solved_ok))
    n_missing = int(np.sum(solved_ok & ~computable))
    n_range = int(np.sum(computable & ~valid))
    range_fate = "kept as extrapolated" if extrapolate else "set to 0"
    warnings.warn(
        f"{n_bad} of {len(valid)} sources are outside the validity of the "
        "Lindegren et al. (2021) zero point and are flagged zpt_valid=False: "
        f"{n_solution} without a 5- or 6-parameter solution and {n_missing} "
        f"with missing inputs (zpt set to 0), {n_range} with magnitude or "
        f"colour out of range (zpt {range_fate}).",
        GaiadistWarning,
        stacklevel=3,
    )
