"""Systematic errors of Gaia parallaxes shared by a cluster's stars.

Gaia's parallaxes have errors that are correlated over small angles: the
stars of one cluster share an offset that no number of members averages
away. Maíz Apellániz, Pantaleoni González & Barbá (2021, A&A 649, A13)
measured the angular covariance of Gaia EDR3 parallaxes at zero separation
as 106.2 µas² (from the LMC at small separations, combined with quasars at
larger ones), a floor of 10.3 µas on any parallax; over a cluster's extent
(up to a degree or two) the covariance falls only slightly below that
value. Lindegren et al. (2021, A&A 649, A2) and Vasiliev & Baumgardt (2021,
MNRAS 505, 5978) give 100-142 µas² at small separations. The default here is
Maíz Apellániz et al.'s 10.3 µas, the one measured for small separations;
the user may set another, or none.

A cluster's distance is set by its mean parallax, which such an offset
shifts as a whole: its total posterior is the statistical one (offset
zero) with the offset's Gaussian prior convolved into the cluster's
parallax, ``1000 / D_total = 1000 / D - offset``. That is the model with a
shared offset as a parameter, integrated out, wherever the distance's
prior is flat over the offset's range in parallax (the default
``log_D ~ Normal(ln 920, 2)`` is). It costs nothing to sample, and the
statistical figure stays available beside it.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from scipy.special import ndtri

from .columns import quantity_values
from .exceptions import InputError

__all__ = [
    "PARALLAX_SYSTEMATIC",
    "PARALLAX_SYSTEMATIC_SOURCE",
    "distance_with_offset",
    "parallax_systematic",
]

#: The default shared parallax offset's standard deviation: the square root
#: of the angular covariance of Gaia EDR3 parallaxes at zero separation.
PARALLAX_SYSTEMATIC = 0.0103 * u.mas
#: Where that value comes from, for ``meta``.
PARALLAX_SYSTEMATIC_SOURCE = (
    "Maiz Apellaniz, Pantaleoni Gonzalez & Barba (2021, A&A 649, A13): "
    "angular covariance of Gaia EDR3 parallaxes at zero separation, "
    "106.2 uas^2 (10.3 uas)"
)


def parallax_systematic(value) -> float:
    """The shared parallax offset's standard deviation in mas, checked.

    ``value`` is an angle (`~astropy.units.Quantity`), or None or 0 (no
    systematic). Any other plain number is refused: its unit would be a
    guess.
    """
    if value is None or (not isinstance(value, u.Quantity) and value == 0):
        return 0.0
    sigma = quantity_values(value, u.mas, "parallax_systematic")
    if np.ndim(sigma) != 0 or not np.isfinite(sigma) or sigma < 0:
        raise InputError(
            "parallax_systematic must be one finite, non-negative angle "
            f"(e.g. 0.0103 mas, or 0 to leave it out), not {value!r}"
        )
    return float(sigma)


def distance_with_offset(distance: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Draws of a cluster's distance (pc) with a shared parallax offset.

    Each draw of ``distance`` gets an offset from ``Normal(0, sigma)`` (mas):
    its parallax ``1000 / distance`` less the offset, turned back into a
    distance. The offsets are the normal distribution's quantiles at evenly
    spaced probabilities, in an order shuffled by ``seed``, so that their
    spread is exact for any number of draws. Where the offset leaves a
    parallax at or below zero, the draw is NaN: the systematic alone then
    leaves the distance unbounded.
    """
    distance = np.asarray(distance, float)
    if sigma == 0:
        return distance.copy()
    n = distance.size
    offsets = sigma * ndtri((np.arange(n) + 0.5) / n)
    offsets = np.random.default_rng(seed).permutation(offsets).reshape(distance.shape)
    plx = 1000.0 / distance - offsets
    with np.errstate(divide="ignore"):
        return np.where(plx > 0, 1000.0 / plx, np.nan)
