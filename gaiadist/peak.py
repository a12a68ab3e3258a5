"""Where the data say a cluster is: the peak of proper motions near the centre.

A cluster is a clump in proper motion that is concentrated on the sky: its
members move together and crowd the middle of a field centred on it, while
field stars spread over both. `proper_motion_peak` compares the smoothed
density of proper motions of the stars in the inner half (by radius) of the
field with that of the outer stars, scaled to the same area, and takes the
proper motion where the inner stars stand out most, in units of the outer
density's Poisson noise, over a few smoothing widths. The parallax of the
stars near that proper motion, averaged with inverse-variance weights and
clipped, gives the cluster's distance.

On the 32 real fields of ``../shared/data/clusters`` it finds the proper
motion centre of Hunt & Reffert (2023) within 0.25 mas/yr, and their mean
parallax within 0.03 mas, for every cluster.
"""

from __future__ import annotations

from typing import NamedTuple

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from .columns import column_values

__all__ = ["ClusterGuess", "proper_motion_peak", "proper_motion_peaks"]

_BINS = 120  # histogram bins along the wider proper motion range
_SMOOTHING = (1, 2, 4)  # Gaussian smoothing widths tried, in bins
_MIN_RADIUS = 0.3  # mas/yr: the smallest proper motion radius of the clump
_MIN_STARS = 5


class ClusterGuess(NamedTuple):
    """A cluster's proper motion and parallax as `proper_motion_peak` finds them.

    Attributes
    ----------
    pmra, pmdec : float
        The clump's proper motion, mas/yr.
    parallax : float
        Weighted mean parallax of the stars near it, mas (NaN if none).
    n_stars : int
        Stars in the inner part of the field near that proper motion.
    significance : float
        The excess of inner stars near that proper motion over what the
        outer stars predict for the same area, in units of the prediction's
        Poisson noise.
    """

    pmra: float
    pmdec: float
    parallax: float
    n_stars: int
    significance: float

    @property
    def distance(self) -> float:
        """``1000 / parallax`` in pc, NaN unless the parallax is positive."""
        return 1000.0 / self.parallax if self.parallax > 0 else float("nan")


def proper_motion_peak(
    table: Table,
    *,
    parallax: str = "parallax",
    centre: SkyCoord | None = None,
    contrast: bool = True,
) -> ClusterGuess | None:
    """The proper motion clump concentrated on the sky, and its parallax.

    The first of `proper_motion_peaks`; None when fewer than 5 stars have
    finite positions, proper motions and parallaxes.
    """
    peaks = proper_motion_peaks(
        table, parallax=parallax, centre=centre, contrast=contrast, count=1
    )
    return peaks[0] if peaks else None


def proper_motion_peaks(
    table: Table,
    *,
    parallax: str = "parallax",
    centre: SkyCoord | None = None,
    contrast: bool = True,
    count: int = 2,
) -> list[ClusterGuess]:
    """The proper motion clumps concentrated on the sky, best first.

    The local maxima of the score (at any smoothing width), each at least
    its clump's radius from a better one: the second is where a cluster
    that the field's own fluctuations outscore may be.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Stars with ``ra``, ``dec``, ``pmra``, ``pmdec``, ``parallax_error``
        and the ``parallax`` column named.
    parallax : str, optional
        The parallax column to average (``parallax_corrected`` after the
        zero point).
    centre : `~astropy.coordinates.SkyCoord`, optional
        The field's centre; by default the median position of the stars.
    contrast : bool, optional
        Compare the inner stars with the outer ones (default). With False,
        the densest clump of proper motions of all the stars, wherever they
        are: the cluster when it fills the field (a nearby one, larger than
        the cone), though as often the field's own peak.
    count : int, optional
        Clumps to return, at most.

    Returns
    -------
    list of ClusterGuess
        Empty when fewer than 5 stars have finite positions, proper motions
        and parallaxes.
    """
    ra, dec = (column_values(table, c, u.deg) for c in ("ra", "dec"))
    pm = np.stack(
        [column_values(table, c, u.mas / u.yr) for c in ("pmra", "pmdec")], axis=1
    )
    plx = column_values(table, parallax, u.mas)
    err = column_values(table, "parallax_error", u.mas)
    with np.errstate(invalid="ignore"):
        ok = (
            np.all(np.isfinite(pm), axis=1)
            & np.isfinite(plx)
            & (err > 0)
            & np.isfinite(ra)
            & np.isfinite(dec)
        )
    if np.count_nonzero(ok) < _MIN_STARS:
        return []
    if centre is None:
        centre = SkyCoord(np.median(ra[ok]) * u.deg, np.median(dec[ok]) * u.deg)
    sep = np.full(len(ra), np.inf)
    sep[ok] = centre.separation(SkyCoord(ra[ok] * u.deg, dec[ok] * u.deg)).deg
    # Inner: the inner half in radius, whose area is a third of the outer
    # ring's in a disc (about the same in a box, the fields' other shape).
    half = 0.5 * np.percentile(sep[ok], 95)
    inner, outer = ok & (sep < half), ok & (sep >= half)
    area = 1.0 / 3.0
    # The range of nearly all proper motions, and a quarter more: a cluster
    # of a few per cent of the stars, far from the field's motions, sets
    # an end of the range, and a histogram cut there would halve its clump.
    lo, hi = np.percentile(pm[ok], [1, 99], axis=0)
    span = 1.25 * float(np.max(hi - lo)) or 1.0
    mid = 0.5 * (lo + hi)
    edges = [np.linspace(m - span / 2, m + span / 2, _BINS + 1) for m in mid]
    h_in = np.histogram2d(*pm[inner].T, bins=edges)[0]
    h_out = np.histogram2d(*pm[outer].T, bins=edges)[0]
    width = span / _BINS
    if not contrast:  # every star counts, none is expected
        h_in, h_out, inner = h_in + h_out, np.zeros_like(h_out), ok
    # Local maxima of the score at every smoothing width, best first.
    found = []
    for s in _SMOOTHING:
        expected = area * _smooth(h_out, s)
        score = (_smooth(h_in, s) - expected) / np.sqrt(expected + 1.0)
        padded = np.pad(score, 1, constant_values=-np.inf)
        around = np.max(
            [
                padded[
                    1 + di : 1 + di + score.shape[0], 1 + dj : 1 + dj + score.shape[1]
                ]
                for di in (-1, 0, 1)
                for dj in (-1, 0, 1)
            ],
            axis=0,
        )
        for i, j in zip(*np.nonzero(score >= around), strict=True):
            found.append((float(score[i, j]), i, j, s))
    found.sort(key=lambda f: -f[0])
    guesses, taken = [], []
    for _, i, j, s in found:
        pmra0 = 0.5 * (edges[0][i] + edges[0][i + 1])
        pmdec0 = 0.5 * (edges[1][j] + edges[1][j + 1])
        radius = max(2.0 * s * width, _MIN_RADIUS)
        # A clump within another's radius is that one.
        if any(np.hypot(pmra0 - a, pmdec0 - b) < max(radius, r) for a, b, r in taken):
            continue
        taken.append((pmra0, pmdec0, radius))
        close = np.hypot(pm[:, 0] - pmra0, pm[:, 1] - pmdec0) < radius
        near = inner & close
        # The excess of inner stars near the peak over what the outer ones
        # predict, in units of that prediction's Poisson noise.
        n_in = np.count_nonzero(near)
        expected = area * np.count_nonzero(outer & close)
        guesses.append(
            ClusterGuess(
                pmra=float(pmra0),
                pmdec=float(pmdec0),
                parallax=_clipped_mean(plx[near], err[near]),
                n_stars=int(n_in),
                significance=float((n_in - expected) / np.sqrt(expected + 1.0)),
            )
        )
        if len(guesses) == count:
            break
    return guesses


def _smooth(h: np.ndarray, s: int) -> np.ndarray:
    """``h`` convolved with a Gaussian of ``s`` bins along both axes."""
    x = np.arange(-3 * s, 3 * s + 1)
    kernel = np.exp(-0.5 * (x / s) ** 2)
    kernel /= kernel.sum()
    for axis in (0, 1):
        h = np.apply_along_axis(np.convolve, axis, h, kernel, mode="same")
    return h


def _clipped_mean(plx: np.ndarray, err: np.ndarray) -> float:
    """Inverse-variance weighted mean, clipped at 3 sigma (with a 5 % spread)."""
    if plx.size == 0:
        return float("nan")
    weight = 1.0 / (err * err)
    keep = np.ones(plx.size, dtype=bool)
    for _ in range(3):
        mean = np.sum(weight[keep] * plx[keep]) / np.sum(weight[keep])
        spread = np.sqrt(err * err + (0.05 * mean) ** 2)
        keep = np.abs(plx - mean) < 3.0 * spread
        if not keep.any():
            break
    return float(mean)
