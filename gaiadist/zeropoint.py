"""The Gaia DR3 parallax zero point of Lindegren et al. (2021)."""

from __future__ import annotations

import enum
import warnings

import astropy.units as u
import numpy as np
from astropy.table import Table
from zero_point import zpt as _lindegren

from .columns import column_values, read_table
from .exceptions import GaiadistWarning, InputError
from .provenance import record

__all__ = ["apply_zeropoint", "GLOBAL_ZEROPOINT", "ZEROPOINT_COLUMNS", "ZeroPointFlag"]

#: Input columns the recipe needs, with the units they are converted to.
ZEROPOINT_COLUMNS = {
    "parallax": u.mas,
    "phot_g_mean_mag": u.mag,
    "nu_eff_used_in_astrometry": u.um**-1,
    "pseudocolour": u.um**-1,
    "ecl_lat": u.deg,
    "astrometric_params_solved": u.dimensionless_unscaled,
}

#: The global parallax offset of Gaia EDR3/DR3 (Lindegren et al. 2021, A&A
#: 649, A2, from quasars), in mas: the zero point of sources for which the
#: recipe gives none, as in Bailer-Jones et al. (2021).
GLOBAL_ZEROPOINT = -0.017

# Validity of the recipe (Lindegren et al. 2021, sect. 4; gaiadr3-zeropoint).
_G_RANGE = (6.0, 21.0)
_NU_EFF_RANGE = (1.1, 1.9)  # 5-parameter solutions, 1/um
_PSEUDOCOLOUR_RANGE = (1.24, 1.72)  # 6-parameter solutions, 1/um
_FIVE_PARAM, _SIX_PARAM = 31, 95

_lindegren.load_tables()


class ZeroPointFlag(enum.IntFlag):
    """Bits of the ``zpt_flag`` column: why a source is outside the recipe (0 = inside).

    Sources with `NO_SOLUTION` or `MISSING_INPUT` get the global offset
    `GLOBAL_ZEROPOINT`; those with `MAGNITUDE_RANGE` or `COLOUR_RANGE` get the
    recipe's value at the nearest edge of its calibration.
    """

    OK = 0
    #: Not a 5- or 6-parameter astrometric solution (e.g. 2-parameter).
    NO_SOLUTION = 1
    #: G, the colour the solution used, or the ecliptic latitude is missing.
    MISSING_INPUT = 2
    #: G outside 6 < G < 21.
    MAGNITUDE_RANGE = 4
    #: nu_eff outside 1.1-1.9 (5-parameter) or pseudocolour outside 1.24-1.72
    #: (6-parameter), in 1/um.
    COLOUR_RANGE = 8


def apply_zeropoint(
    table: Table,
    *,
    inplace: bool = False,
    strict: bool = False,
    missing_inputs: str = "raise",
) -> Table:
    """Add the Lindegren et al. (2021) parallax zero point and corrected parallax.

    The rule is the one of Bailer-Jones et al. (2021, AJ 161, 147) for their
    catalogue of distances: the recipe's value (gaiadr3-zeropoint) wherever
    it can be computed, which outside the recipe's calibrated magnitude and
    colour range is its value at the nearest edge, and the global offset
    `GLOBAL_ZEROPOINT` (-0.017 mas) where it cannot (sources without a 5- or
    6-parameter solution, or with missing inputs). Every source outside the
    calibration is flagged, and one warning counts them by reason.

    Four columns are appended (or replaced if present):

    ``zpt`` (mas)
        The zero point.
    ``parallax_corrected`` (mas)
        ``parallax - zpt``.
    ``zpt_valid`` (bool)
        True where the source is inside the recipe's calibration: a 5- or
        6-parameter solution with finite inputs, ``6 < G < 21``, and
        ``1.1 < nu_eff_used_in_astrometry < 1.9`` (5-parameter) or
        ``1.24 < pseudocolour < 1.72`` (6-parameter), all in 1/um.
    ``zpt_flag`` (int)
        `ZeroPointFlag` bits saying why a source is not valid; 0 when it is.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        Gaia DR3 sources with the columns ``parallax``, ``phot_g_mean_mag``,
        ``nu_eff_used_in_astrometry``, ``pseudocolour``, ``ecl_lat`` and
        ``astrometric_params_solved``. Columns with units are converted;
        columns without are taken in Gaia's units (mas, mag, 1/um, deg).
    inplace : bool, optional
        Add the columns to ``table`` itself instead of to a copy.
    strict : bool, optional
        Correct only the sources inside the recipe's calibration: the others
        get NaN ``zpt`` and ``parallax_corrected``, so that the distance
        models flag them and leave them out, instead of the edge value or
        the global offset.
    missing_inputs : {"raise", "global"}, optional
        What to do when the table lacks an input column other than
        ``parallax``: raise `InputError`, or give every source the global
        offset (flagged `ZeroPointFlag.MISSING_INPUT`, with a warning that
        names the absent columns), as for a source with missing values.

    Returns
    -------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        The table with the four columns, of the same class as the input, with
        every input row and column unchanged and in order.

    Raises
    ------
    InputError
        If the table is empty, or a column is missing or in a wrong unit.
    """
    if missing_inputs not in ("raise", "global"):
        raise InputError(
            f"missing_inputs must be 'raise' or 'global', got {missing_inputs!r}"
        )
    table = read_table(table)
    absent = [
        name
        for name in ZEROPOINT_COLUMNS
        if name != "parallax" and name not in table.colnames
    ]
    if absent and missing_inputs == "global":
        flag = np.full(len(table), ZeroPointFlag.MISSING_INPUT, dtype=np.uint8)
        zpt = np.full(len(table), np.nan if strict else GLOBAL_ZEROPOINT)
        values = {"parallax": column_values(table, "parallax", u.mas)}
        warnings.warn(
            f"the table has no {', '.join(map(repr, absent))}, so the Lindegren "
            "et al. (2021) zero point cannot be computed; "
            + (
                "zpt and parallax_corrected are NaN (strict)"
                if strict
                else f"every source gets the global {GLOBAL_ZEROPOINT} mas"
            ),
            GaiadistWarning,
            stacklevel=3,
        )
    else:
        values = {
            name: column_values(table, name, unit)
            for name, unit in ZEROPOINT_COLUMNS.items()
        }
        zpt, flag = _zeropoint(values)
        if strict:
            zpt[flag != 0] = np.nan
        _warn_invalid(flag, strict)
    valid = flag == 0
    out = table if inplace else table.copy()
    out["zpt"] = zpt * u.mas
    out["zpt"].info.description = "parallax zero point, Lindegren et al. (2021)"
    out["parallax_corrected"] = (values["parallax"] - zpt) * u.mas
    out["parallax_corrected"].info.description = "parallax - zpt"
    out["zpt_valid"] = valid
    out["zpt_valid"].info.description = "inside the zero point's calibration"
    out["zpt_flag"] = flag
    out["zpt_flag"].info.description = "gaiadist.ZeroPointFlag bits; 0 = valid"
    record(
        out,
        "zeropoint",
        {
            "recipe": "Lindegren et al. (2021), gaiadr3-zeropoint",
            "outside_calibration": (
                "NaN (strict)"
                if strict
                else "recipe's value at the edge of its range; "
                f"{GLOBAL_ZEROPOINT} mas where it cannot be computed"
            ),
            "n_valid": int(valid.sum()),
            "n_sources": len(valid),
        },
    )
    return out


def _zeropoint(values: dict) -> tuple[np.ndarray, np.ndarray]:
    """Zero point (mas) and `ZeroPointFlag` bits, for columns in Gaia units."""
    g = values["phot_g_mean_mag"]
    nu_eff = values["nu_eff_used_in_astrometry"]
    pseudo = values["pseudocolour"]
    beta = values["ecl_lat"]
    solved = values["astrometric_params_solved"]

    five = solved == _FIVE_PARAM
    six = solved == _SIX_PARAM
    colour = np.where(six, pseudo, nu_eff)
    finite = np.isfinite(g) & np.isfinite(colour) & np.isfinite(beta)
    computable = (five | six) & finite
    colour_ok = (five & _inside(nu_eff, _NU_EFF_RANGE)) | (
        six & _inside(pseudo, _PSEUDOCOLOUR_RANGE)
    )
    flag = np.zeros(len(g), dtype=np.uint8)
    flag[~(five | six)] |= np.uint8(ZeroPointFlag.NO_SOLUTION)
    flag[(five | six) & ~finite] |= np.uint8(ZeroPointFlag.MISSING_INPUT)
    flag[computable & ~_inside(g, _G_RANGE)] |= np.uint8(ZeroPointFlag.MAGNITUDE_RANGE)
    flag[computable & ~colour_ok] |= np.uint8(ZeroPointFlag.COLOUR_RANGE)

    zpt = np.full(len(g), GLOBAL_ZEROPOINT)
    if np.any(computable):
        with warnings.catch_warnings():
            # The recipe warns about out-of-range inputs; we count those ourselves.
            warnings.simplefilter("ignore", UserWarning)
            zpt[computable] = _lindegren.get_zpt(
                g[computable],
                nu_eff[computable],
                pseudo[computable],
                beta[computable],
                solved[computable],
            )
    return zpt, flag


def _inside(x: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (x > bounds[0]) & (x < bounds[1])


def _warn_invalid(flag: np.ndarray, strict: bool) -> None:
    n_bad = int(np.count_nonzero(flag))
    if n_bad == 0:
        return

    def count(bits):
        return int(np.count_nonzero(flag & bits))

    n_range = count(ZeroPointFlag.MAGNITUDE_RANGE | ZeroPointFlag.COLOUR_RANGE)
    n_global = count(ZeroPointFlag.NO_SOLUTION | ZeroPointFlag.MISSING_INPUT)
    if strict:
        fate = "their zpt and parallax_corrected are NaN (strict)"
    else:
        fate = (
            "those out of range keep the recipe's value at the edge of its "
            f"range, the others get the global {GLOBAL_ZEROPOINT} mas"
        )
    warnings.warn(
        f"{n_bad} of {len(flag)} sources are outside the calibration of the "
        "Lindegren et al. (2021) zero point (zpt_valid=False, zpt_flag says "
        f"why): {count(ZeroPointFlag.NO_SOLUTION)} without a 5- or 6-parameter "
        f"solution and {count(ZeroPointFlag.MISSING_INPUT)} with missing "
        f"inputs ({n_global} in all), {n_range} with magnitude or colour out "
        f"of range; {fate}.",
        GaiadistWarning,
        stacklevel=3,
    )
