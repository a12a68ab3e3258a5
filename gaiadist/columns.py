"""Reading Gaia columns from astropy tables, with units and masks checked."""

from __future__ import annotations

import os

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from .exceptions import InputError

__all__ = ["read_table", "column_values", "quantity_values"]


def read_table(data: Table | str | os.PathLike) -> Table:
    """Return ``data`` as an astropy table, reading it from disk if it is a path.

    Parameters
    ----------
    data : `~astropy.table.Table`, str or path-like
        A `~astropy.table.Table` or `~astropy.table.QTable`, or the path of any
        file `~astropy.table.QTable.read` understands (FITS, VOTable, ECSV, ...).

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
        try:
            data = QTable.read(data)
        except (OSError, ValueError) as exc:
            raise InputError(
                f"cannot read a table from {os.fspath(data)!r}: {exc}"
            ) from exc
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
