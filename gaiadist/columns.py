"""Reading Gaia columns from astropy tables, with units and masks checked."""

from __future__ import annotations

import json
import os
import re

import astropy.units as u
import numpy as np
from astropy.io.registry import IORegistryError
from astropy.table import QTable, Table

from .exceptions import InputError

__all__ = [
    "GAIA_UNITS",
    "check_table_file",
    "column_values",
    "decode_json_meta",
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
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
_FORMATS = (
    "FITS (.fits, .fits.gz), VOTable (.vot, .xml), ECSV (.ecsv), "
    "CSV (.csv, .csv.gz) or Parquet (.parquet)"
)
#: FITS keywords that describe one column by its number: they go stale as
#: soon as columns are added or removed, so they become column descriptions
#: (``TCOMMn``) and UCDs (``TUCDn``) on reading and are never copied on.
_COLUMN_KEYWORD = re.compile(r"^T(COMM|UCD|UTYP)(\d+)$")
#: The FITS keyword listing the metadata entries written as JSON text.
_JSON_KEYS = "JSONMETA"


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
    check_table_file(name)
    if format is None:
        format = _format_of(name)
    try:
        table = QTable.read(name, format=format)
    except IORegistryError:
        raise InputError(
            f"cannot tell the format of {name} from its name: gaiadist reads {_FORMATS}"
        ) from None
    except ImportError as exc:
        raise InputError(f"cannot read {name!r}: {exc}") from None
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise InputError(f"cannot read a table from {name}: {exc}") from None
    table = gaia_conventions(table, name)
    if len(table) == 0:
        raise InputError(f"{name!r} holds no rows: there are no sources to use")
    return table


def check_table_file(path: str | os.PathLike) -> None:
    """Raise `InputError` unless ``path`` is an existing file (not a folder)."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise InputError(f"{name}: no such file")
    if os.path.isdir(name):
        raise InputError(f"{name} is a folder, not a table file ({_FORMATS})")


def gaia_conventions(table: Table, name: str) -> QTable:
    """``table`` with lower-case names and archive units, as `read_gaia` gives.

    ``name`` (the file it came from) goes into the error messages. Raises
    `InputError` for names that differ only in case and for a floating point
    ``source_id``.
    """
    table = QTable(table, copy=False)
    table.meta = _meta_from_fits(table, table.meta)
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
    if lower.endswith(".ecsv"):
        return "ascii.ecsv"
    if lower.endswith(_FITS_SUFFIXES):
        return "fits"
    return None


def write_table(
    table: Table, path: str | os.PathLike, *, overwrite: bool = False
) -> None:
    """Write ``table`` in the format its file name's extension names.

    As `read_gaia` reads them: FITS, VOTable (``.vot``, ``.xml``), ECSV,
    CSV (also compressed) and Parquet; any other extension is left to
    astropy to recognise. Metadata survives a round trip through
    `read_gaia` in every format: in FITS, nested entries (the provenance in
    ``meta["gaiadist"]``) are written as JSON text, ``comments`` and
    ``history`` as COMMENT and HISTORY cards, and column descriptions as
    ``TCOMMn``. FITS keywords that describe a column by its number
    (``TCOMMn``, ``TUCDn``, ``TUTYPn``) are not copied from ``meta``: they
    would describe the wrong column once columns have been added.

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
    table = table.copy(copy_data=False)
    meta = {k: v for k, v in table.meta.items() if not _COLUMN_KEYWORD.match(k)}
    if name.lower().endswith(_FITS_SUFFIXES):
        meta = _meta_for_fits(table, meta)
    table.meta = meta
    try:
        table.write(name, format=format, overwrite=overwrite)
    except IORegistryError:
        raise InputError(
            f"cannot tell which format to write {name} in from its name: "
            f"gaiadist writes {_FORMATS}"
        ) from None
    except (OSError, ValueError, TypeError, ImportError) as exc:
        raise InputError(f"cannot write {name!r}: {exc}") from None


def _meta_for_fits(table: Table, meta: dict) -> dict:
    """``meta`` as FITS header cards can hold it.

    Nested entries (the provenance in ``meta["gaiadist"]``, a simulation's
    truth) become JSON text, listed in the ``JSONMETA`` keyword so that
    `read_gaia` turns them back; ``comments`` and ``history`` stay lists,
    written as COMMENT and HISTORY cards; column descriptions go into
    ``TCOMMn``.
    """
    out, encoded = {}, []
    for key, value in decode_json_meta(meta).items():
        if key.lower() in ("comments", "history") and isinstance(value, list):
            out[key.lower()] = [str(line) for line in value]
        elif isinstance(value, dict | list):
            out[key] = json.dumps(value, sort_keys=True, default=str)
            encoded.append(key)
        else:
            out[key] = value
    if encoded:
        out[_JSON_KEYS] = ",".join(encoded)
    for i, name in enumerate(table.colnames, start=1):
        description = table[name].info.description
        if description:
            out[f"TCOMM{i}"] = str(description)
    return out


def _meta_from_fits(table: Table, meta: dict) -> dict:
    """Undo `_meta_for_fits`, and turn the columns' FITS keywords into metadata.

    ``TCOMMn`` becomes the description of column n (where it has none) and
    ``TUCDn`` its ``meta["ucd"]``; neither is kept in the table's metadata,
    where it would go stale. Entries listed in ``JSONMETA`` are parsed back.
    """
    out = {}
    for key, value in meta.items():
        match = _COLUMN_KEYWORD.match(key)
        if match is None:
            out["history" if key == "HISTORY" else key] = value
            continue
        kind, number = match.groups()
        if 1 <= int(number) <= len(table.colnames):
            col = table[table.colnames[int(number) - 1]]
            if kind == "COMM" and not col.info.description:
                col.info.description = str(value)
            elif kind == "UCD":
                col.info.meta = {**(col.info.meta or {}), "ucd": str(value)}
    return decode_json_meta(out)


def decode_json_meta(meta: dict) -> dict:
    """``meta`` with the entries a FITS file holds as JSON text parsed back.

    Those are listed in its ``JSONMETA`` keyword (by `write_table`) and come
    back under their upper-case FITS keyword when the file is read by
    astropy itself; `read_gaia` does this already.
    """
    out = dict(meta)
    for key in str(out.pop(_JSON_KEYS, "")).split(","):
        text = out.get(key.upper(), out.get(key)) if key else None
        if isinstance(text, str):
            try:
                value = json.loads(text)
            except ValueError:
                continue
            out.pop(key.upper(), None)
            out[key] = value
    return out


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
    """Convert a Quantity argument to float64 values in ``unit``.

    Parameters
    ----------
    value : `~astropy.units.Quantity`
        One value or an array of them, in any unit convertible to ``unit``.
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
        If ``value`` is a plain number (which unit it is in would be a
        guess), or has a unit that cannot be converted to ``unit``.
    """
    unit = u.Unit(unit)
    wanted = {
        "length": "a length such as 1.35 * u.kpc",
        "angle": "an angle such as 0.5 * u.deg",
    }.get(str(unit.physical_type), f"a Quantity in {unit}")
    if not isinstance(value, u.Quantity):
        raise InputError(
            f"{name} needs a unit: give {wanted}, not the plain number {value!r}"
        )
    try:
        return np.asarray(value.to_value(unit), dtype=np.float64)
    except u.UnitConversionError:
        raise InputError(f"{name} is in {value.unit}: give {wanted}") from None
