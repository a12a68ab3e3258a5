"""Reading Gaia columns from astropy tables, with units and masks checked."""

from __future__ import annotations

import json
import os

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from .exceptions import InputError

__all__ = [
    "GAIA_UNITS",
    "column_values",
    "gaia_conventions",
    "quantity_values",
    "read_gaia",
    "read_table",
    "write_table",
]


#: Units of the Gaia DR3 archive columns gaiadist knows, given to columns
#: of these names that arrive without one (CSV files, for instance).
GAIA_UNITS = {
    "ra": u.deg,
    "dec": u.deg,
    "l": u.deg,
    "b": u.deg,
    "ecl_lon": u.deg,
    "ecl_lat": u.deg,
    "ra_error": u.mas,
    "dec_error": u.mas,
    "parallax": u.mas,
    "parallax_error": u.mas,
    "pmra": u.mas / u.yr,
    "pmra_error": u.mas / u.yr,
    "pmdec": u.mas / u.yr,
    "pmdec_error": u.mas / u.yr,
    "phot_g_mean_mag": u.mag,
    "phot_bp_mean_mag": u.mag,
    "phot_rp_mean_mag": u.mag,
    "bp_rp": u.mag,
    "bp_g": u.mag,
    "g_rp": u.mag,
    "nu_eff_used_in_astrometry": 1 / u.um,
    "pseudocolour": 1 / u.um,
    "pseudocolour_error": 1 / u.um,
    "radial_velocity": u.km / u.s,
    "radial_velocity_error": u.km / u.s,
}
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz")


def read_gaia(path: str | os.PathLike, *, format: str | None = None) -> QTable:
    """Read a Gaia table from a file into gaiadist's column conventions.

    FITS, VOTable, ECSV, CSV (also compressed, as the Gaia archive's bulk
    files are) and Parquet are recognised by their extension; ``format``
    overrides that with any `astropy.table` format name. Column names are
    made lower case, as the archive writes them; columns named as in
    `GAIA_UNITS` that have no unit get the archive's unit; everything else
    is kept as read, in order.

    Parameters
    ----------
    path : str or path-like
        The file.
    format : str, optional
        An `astropy.table` reader format, e.g. ``"ascii.csv"``.

    Returns
    -------
    `~astropy.table.QTable`

    Raises
    ------
    InputError
        If the file cannot be read, is empty, or ``source_id`` has lost its
        64-bit integer exactness (read as floating point numbers).
    """
    name = os.fspath(path)
    if format is None:
        format = _format_of(name)
    try:
        table = QTable.read(name, format=format)
    except ImportError as exc:
        raise InputError(f"cannot read {name!r}: {exc}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read a table from {name!r}: {exc}") from None
    table = gaia_conventions(table, name)
    if len(table) == 0:
        raise InputError(f"{name!r} holds no rows: there are no sources to use")
    return table


def gaia_conventions(table: Table, name: str) -> QTable:
    """``table`` with lower-case names and archive units, as `read_gaia` gives.

    ``name`` (the file it came from) goes into the error messages. Raises
    `InputError` for names that differ only in case and for a floating point
    ``source_id``.
    """
    table = QTable(table, copy=False)
    lower = [c.lower() for c in table.colnames]
    if len(set(lower)) != len(lower):
        raise InputError(
            f"{name!r} has columns whose names differ only in case: "
            f"{', '.join(table.colnames)}"
        )
    table.rename_columns(table.colnames, lower)
    for col, unit in GAIA_UNITS.items():
        if col in table.colnames and getattr(table[col], "unit", None) is None:
            if table[col].dtype.kind in "iuf":
                table[col].unit = unit
                table[col] = table[col]  # a Quantity now that it has a unit
    if "source_id" in table.colnames and table["source_id"].dtype.kind == "f":
        raise InputError(
            f"source_id in {name!r} holds floating point numbers, which cannot "
            "keep Gaia's 19-digit identifiers exact; write it as a 64-bit integer"
        )
    return table


def _format_of(name: str) -> str | None:
    """The astropy format for extensions it does not recognise by itself."""
    lower = name.lower()
    if lower.endswith(_CSV_SUFFIXES):
        return "ascii.csv"
    if lower.endswith((".parquet", ".parq")):
        return "parquet"
    if lower.endswith((".vot", ".xml")):
        return "votable"
    return None


def write_table(
    table: Table, path: str | os.PathLike, *, overwrite: bool = False
) -> None:
    """Write ``table`` in the format its file name's extension names.

    As `read_gaia` reads them: FITS, VOTable (``.vot``, ``.xml``), ECSV,
    CSV (also compressed) and Parquet; any other extension is left to
    astropy to recognise. In FITS, nested metadata (the provenance in
    ``meta["gaiadist"]``) is written as JSON text.

    Raises
    ------
    InputError
        If the file exists and ``overwrite`` is false, or astropy cannot
        write that format.
    """
    name = os.fspath(path)
    if os.path.exists(name) and not overwrite:
        raise InputError(f"{name} exists; pass overwrite=True to replace it")
    format = _format_of(name)
    if name.lower().endswith((".fits", ".fit", ".fits.gz", ".fit.gz")):
        # FITS headers hold only scalars: nested metadata (provenance, the
        # truth of a simulation) goes in as JSON text instead of being lost.
        table = table.copy(copy_data=False)
        table.meta = {
            k: json.dumps(v, default=str) if isinstance(v, dict | list) else v
            for k, v in table.meta.items()
        }
    try:
        table.write(name, format=format, overwrite=overwrite)
    except (OSError, ValueError, TypeError, ImportError) as exc:
        raise InputError(f"cannot write {name!r}: {exc}") from None


def read_table(data: Table | str | os.PathLike) -> Table:
    """Return ``data`` as an astropy table, reading it from disk if it is a path.

    Parameters
    ----------
    data : `~astropy.table.Table`, str or path-like
        A `~astropy.table.Table` or `~astropy.table.QTable`, or a file
        `read_gaia` reads (FITS, VOTable, ECSV, CSV, Parquet).

    Returns
    -------
    table : `~astropy.table.Table`
        The table itself (not a copy) or the table read from the file.

    Raises
    ------
    InputError
        If ``data`` is neither a table nor a readable file, or has no rows.
    """
    if isinstance(data, str | os.PathLike):
        data = read_gaia(data)
    if not isinstance(data, Table):
        raise InputError(
            f"expected an astropy Table or QTable, got {type(data).__name__}"
        )
    if len(data) == 0:
        raise InputError("the input table is empty: there are no sources to use")
    return data


def column_values(table: Table, name: str, unit: u.UnitBase | str) -> np.ndarray:
    """Return one column as a float64 array in ``unit``, masked entries as NaN.

    Columns that carry a unit are converted to ``unit``; columns without one
    are taken to be in ``unit`` already (Gaia archive convention).

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table holding the column.
    name : str
        Column name.
    unit : `~astropy.units.UnitBase` or str
        The unit wanted; use ``""`` for a dimensionless number.

    Returns
    -------
    values : `numpy.ndarray`
        A new float64 array; masked or missing entries are NaN.

    Raises
    ------
    InputError
        If the column is missing, not numeric, or has a unit that cannot be
        converted to ``unit``.
    """
    if name not in table.colnames:
        raise InputError(
            f"the input table has no column {name!r} "
            f"(columns present: {', '.join(table.colnames)})"
        )
    unit = u.Unit(unit)
    col = table[name]
    mask = _mask_of(col)
    data = _data_of(col)
    if data.dtype.kind not in "biuf":
        raise InputError(f"column {name!r} holds {data.dtype} values, not numbers")
    values = data.astype(np.float64, copy=True)
    col_unit = getattr(col, "unit", None)
    if col_unit is not None:
        try:
            values = (values * col_unit).to_value(unit)
        except u.UnitConversionError:
            wanted = unit if unit != u.dimensionless_unscaled else "a plain number"
            raise InputError(
                f"column {name!r} is in {col_unit}, which cannot be converted "
                f"to {wanted}"
            ) from None
    values[mask] = np.nan
    return values


def _mask_of(col) -> np.ndarray:
    """Boolean mask of a masked column or masked quantity (all False if none)."""
    mask = getattr(col, "mask", None)
    if mask is None or mask is np.ma.nomask:
        return np.zeros(len(col), dtype=bool)
    return np.asarray(mask, dtype=bool).copy()


def _data_of(col) -> np.ndarray:
    """The raw values of a column (Column, Quantity, masked or not), no unit."""
    if hasattr(col, "unmasked"):  # astropy Masked quantities
        col = col.unmasked
    elif isinstance(col, np.ma.MaskedArray):  # MaskedColumn
        col = col.data
    return np.asarray(getattr(col, "value", col))


def quantity_values(value, unit: u.UnitBase | str, name: str) -> np.ndarray:
    """Convert an argument (Quantity or plain number) to float64 values in ``unit``.

    Parameters
    ----------
    value : `~astropy.units.Quantity`, float or array-like
        Plain numbers are taken to be in ``unit``.
    unit : `~astropy.units.UnitBase` or str
        The unit wanted.
    name : str
        The argument's name, for error messages.

    Returns
    -------
    values : `numpy.ndarray`
        float64 array (0-d for a scalar).

    Raises
    ------
    InputError
        If ``value`` has a unit that cannot be converted to ``unit``.
    """
    if isinstance(value, u.Quantity):
        try:
            return np.asarray(value.to_value(unit), dtype=np.float64)
        except u.UnitConversionError:
            raise InputError(
                f"{name} is in {value.unit}, which cannot be converted to {unit}"
            ) from None
    return np.asarray(value, dtype=np.float64)
