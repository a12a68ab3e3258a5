"""The geometric distance prior of Bailer-Jones et al. (2021) for any source.

Bailer-Jones, Rybizki, Fouesneau, Demleitner & Andrae (2021, AJ 161, 147)
computed the geometric distances of 1.47 billion Gaia EDR3 sources with a
generalised gamma prior, ``P(r) ∝ r**beta exp(-(r / L)**alpha)``, whose three
parameters they fitted, per HEALPix level-5 pixel, to a mock catalogue of the
Galaxy. The package ships those parameters (``data/bj21_prior.ecsv.gz``: the
columns ``healpix``, ``GGDrlen``, ``GGDalpha``, ``GGDbeta`` and ``GGDmedian``
of the authors' ``prior_summary.csv``, values unchanged; its ``meta`` records
the citation and where the copy came from), so the prior of any source, found
from its ``source_id``, works offline.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from astropy.table import Table

__all__ = ["BJ21_PRIOR_FILE", "N_PIXELS", "bj21_prior", "bj21_prior_table", "healpix5"]

#: The prior parameters per HEALPix level-5 pixel, shipped with the package.
BJ21_PRIOR_FILE = Path(__file__).parent / "data" / "bj21_prior.ecsv.gz"

#: Number of HEALPix level-5 pixels: 12 * 4**5.
N_PIXELS = 12 * 4**5

# A source_id holds its HEALPix level-12 pixel (nested) above bit 35, so the
# level-5 pixel is source_id // (2**35 * 4**(12 - 5)) = source_id >> 49.
_LEVEL5_SHIFT = 35 + 2 * (12 - 5)


@functools.lru_cache(maxsize=1)
def bj21_prior_table() -> Table:
    """The shipped table of prior parameters, one row per level-5 pixel.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``healpix``, ``GGDrlen`` (pc), ``GGDalpha``, ``GGDbeta`` and
        ``GGDmedian`` (pc), row ``h`` for pixel ``h``; ``meta`` holds the
        citation and provenance. Cached: copy it before changing it.
    """
    table = Table.read(BJ21_PRIOR_FILE, format="ascii.ecsv")
    if len(table) != N_PIXELS or np.any(table["healpix"] != np.arange(N_PIXELS)):
        raise RuntimeError(f"{BJ21_PRIOR_FILE} is not one row per level-5 pixel")
    return table


def healpix5(source_id) -> tuple[np.ndarray, np.ndarray]:
    """HEALPix level-5 pixel (nested) of Gaia DR3 / EDR3 sources.

    Parameters
    ----------
    source_id : array-like of int
        Gaia ``source_id`` values (64-bit integers; a masked column is
        accepted).

    Returns
    -------
    pixel : `numpy.ndarray`
        int64 pixel numbers, ``source_id >> 49``; -1 where there is none.
    ok : `numpy.ndarray`
        False for masked entries and for values that are not a valid
        ``source_id`` (negative, or beyond the last pixel).

    Raises
    ------
    TypeError
        If the values are not integers (a floating point column has lost
        the identifiers' low digits and cannot be trusted).
    """
    mask = np.ma.getmaskarray(source_id)
    values = np.ma.getdata(source_id)
    values = np.asarray(getattr(values, "value", values))
    if values.dtype.kind not in "iu":
        raise TypeError(
            f"source_id holds {values.dtype} values, not integers; Gaia's "
            "identifiers need a 64-bit integer column"
        )
    values = values.astype(np.int64, copy=False)
    pixel = np.right_shift(values, _LEVEL5_SHIFT)
    ok = ~mask & (values >= 0) & (pixel < N_PIXELS)
    return np.where(ok, pixel, -1), ok


def bj21_prior(source_id) -> dict[str, np.ndarray]:
    """The Bailer-Jones et al. (2021) geometric prior of each source.

    Parameters
    ----------
    source_id : array-like of int
        Gaia DR3 (or EDR3) ``source_id`` values.

    Returns
    -------
    dict
        ``healpix`` (int64, -1 where there is none), ``alpha``, ``beta``,
        ``length_scale`` (pc) and ``median`` (pc, the prior's median from the
        table), NaN where the source has no pixel, and ``ok`` (bool).

    Raises
    ------
    TypeError
        If ``source_id`` does not hold integers.

    Examples
    --------
    >>> from gaiadist.bj21 import bj21_prior
    >>> prior = bj21_prior([598694977656708224])  # a star of M67
    >>> int(prior["healpix"][0]), round(float(prior["median"][0]))
    (1063, 1099)
    """
    pixel, ok = healpix5(source_id)
    table = bj21_prior_table()
    out = {"healpix": pixel, "ok": ok}
    for key, name in (
        ("alpha", "GGDalpha"),
        ("beta", "GGDbeta"),
        ("length_scale", "GGDrlen"),
        ("median", "GGDmedian"),
    ):
        column = np.asarray(table[name], dtype=np.float64)
        out[key] = np.where(ok, column[np.maximum(pixel, 0)], np.nan)
    return out
