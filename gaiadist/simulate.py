"""Gaia-like synthetic star fields with known truth.

`cluster_field` draws a field exactly from the model `ClusterDistance` fits:
each star is a cluster member with probability ``Q``, at a distance that is
log-normal around ``D`` with width ``sigma = approx_size / D``, or a field
star at an EDSD distance with length scale ``L``. The observables look like a
Gaia DR3 cone search: positions, proper motions, G magnitude and BP-RP colour,
and a parallax with the DR3 error for the star's magnitude plus the
Lindegren et al. (2021) zero point, so that `gaiadist.apply_zeropoint`
removes it exactly.

Every star, member or not, gets a G magnitude from the same distribution,
independent of its distance: the fitted model treats parallax errors as given
and has no selection function, and if members and field stars had different
error distributions the model's single ``Q`` would be biased (in a first
version members with their own magnitudes gave ``Q`` twice the truth). Members
then get the BP-RP colour of a simple main sequence at their absolute
magnitude, so they form a recognisable sequence in a colour-magnitude
diagram.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord
from astropy.table import QTable

from .columns import quantity_values
from .zeropoint import apply_zeropoint

__all__ = ["M67_LIKE", "cluster_field", "parallax_error_dr3"]

#: `cluster_field` arguments for a cluster like M67: its published posterior
#: (D = 836.9 pc, approx_size = 14.6 pc, Q = 0.424, L = 469.6 pc, rounded),
#: the simulation of ``gaiadist demo``.
M67_LIKE = {
    "distance": 837 * u.pc,
    "size": 14.6 * u.pc,
    "fraction": 0.42,
    "length_scale": 470 * u.pc,
}

_G_RANGE = (12.0, 20.9)  # inside the zero point's validity (6 < G < 21)
_FIELD_SLOPE = 0.3  # star counts rise as 10^(0.3 G)
_FIVE_PARAM = 31


def parallax_error_dr3(g_mag) -> np.ndarray:
    """Typical Gaia DR3 parallax error (mas) for a G magnitude.

    ``sigma = sqrt(40 + 800 z + 30 z^2)`` micro-arcseconds with
    ``z = 10^(0.4 (max(G, 13) - 15))`` (Gaia DR3 documentation, after
    Lindegren et al. 2021): about 0.03 mas at G = 15, 0.08 at 17, 0.6 at 20.
    """
    z = 10.0 ** (0.4 * (np.maximum(np.asarray(g_mag, dtype=float), 13.0) - 15.0))
    return 1e-3 * np.sqrt(40.0 + 800.0 * z + 30.0 * z * z)


def cluster_field(
    n_stars: int = 2000,
    *,
    distance: u.Quantity = 900 * u.pc,
    size: u.Quantity = 10 * u.pc,
    fraction: float = 0.3,
    length_scale: u.Quantity = 400 * u.pc,
    center: SkyCoord | None = None,
    radius: u.Quantity = 0.5 * u.deg,
    zero_point: bool = True,
    seed: int | None = None,
) -> QTable:
    """A cone of Gaia-like stars: a cluster in front of (and among) a field.

    Parameters
    ----------
    n_stars : int, optional
        Number of stars in the cone.
    distance : `~astropy.units.Quantity`, optional
        Cluster distance ``D``.
    size : `~astropy.units.Quantity`, optional
        The cluster's ``approx_size = sigma D``, ``sigma`` being the width of
        its members' ``ln r``.
    fraction : float, optional
        Probability ``Q`` that a star is a member (0 gives a field only).
    length_scale : `~astropy.units.Quantity`, optional
        EDSD length scale ``L`` of the field.
    center : `~astropy.coordinates.SkyCoord`, optional
        Centre of the cone; by default M67's position.
    radius : `~astropy.units.Quantity`, optional
        Radius of the cone.
    zero_point : bool, optional
        Add the Lindegren et al. (2021) parallax zero point to ``parallax``.
    seed : int, optional
        Seed of the random generator.

    Returns
    -------
    `~astropy.table.QTable`
        Gaia DR3 columns (``source_id``, ``ra``, ``dec``, ``parallax``,
        ``parallax_error``, ``pmra``, ``pmdec``, ``phot_g_mean_mag``,
        ``bp_rp``, and the zero point's inputs) plus the truth per star,
        ``true_distance`` and ``true_member``. ``meta["truth"]`` holds
        ``D``, ``approx_size`` and ``L`` (pc), ``Q`` and ``n_members``.
    """
    if n_stars < 1:
        raise ValueError("n_stars must be positive")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be between 0 and 1")
    d = float(quantity_values(distance, u.pc, "distance"))
    sigma = float(quantity_values(size, u.pc, "size")) / d
    scale = float(quantity_values(length_scale, u.pc, "length_scale"))
    if center is None:
        center = SkyCoord(ra=132.846 * u.deg, dec=11.814 * u.deg)
    rng = np.random.default_rng(seed)

    member = rng.random(n_stars) < fraction
    n_mem = int(np.count_nonzero(member))
    r = np.empty(n_stars)
    r[~member] = rng.gamma(3.0, scale, size=n_stars - n_mem)
    r[member] = d * np.exp(sigma * rng.normal(size=n_mem))
    lo, hi = (10.0 ** (_FIELD_SLOPE * g) for g in _G_RANGE)
    g_mag = np.log10(lo + (hi - lo) * rng.random(n_stars)) / _FIELD_SLOPE
    bp_rp = np.clip(rng.normal(1.1, 0.45, n_stars), 0.2, 3.5)
    # A straight main sequence through the Sun (BP-RP 0.82, M_G 4.67).
    abs_mag = g_mag[member] - 5.0 * np.log10(r[member] / 10.0)
    bp_rp[member] = np.clip(
        0.82 + (abs_mag - 4.67) / 3.5 + rng.normal(0.0, 0.03, n_mem), -0.3, 4.0
    )

    err = parallax_error_dr3(g_mag)
    parallax = 1000.0 / r + err * rng.normal(size=n_stars)
    cone = float(quantity_values(radius, u.deg, "radius"))
    sep = cone * np.sqrt(rng.random(n_stars))
    pos = center.directional_offset_by(
        rng.uniform(0, 360, n_stars) * u.deg, sep * u.deg
    )
    pm_field = rng.normal(0.0, 8.0, (2, n_stars))
    pm_cluster = np.array([[-11.0], [-3.0]]) + rng.normal(0.0, 0.3, (2, n_stars))
    pm = np.where(member, pm_cluster, pm_field)

    out = QTable()
    out["source_id"] = _source_ids(rng, n_stars)
    out["ra"] = pos.ra.to(u.deg)
    out["dec"] = pos.dec.to(u.deg)
    out["parallax"] = parallax * u.mas
    out["parallax_error"] = err * u.mas
    out["pmra"] = pm[0] * u.mas / u.yr
    out["pmdec"] = pm[1] * u.mas / u.yr
    out["phot_g_mean_mag"] = g_mag * u.mag
    out["bp_rp"] = bp_rp * u.mag
    # The effective wavenumber that goes with the colour (Lindegren et al.
    # 2021, eq. 3); every source gets a 5-parameter solution.
    out["nu_eff_used_in_astrometry"] = (
        1.76 - (1.61 / np.pi) * np.arctan(0.531 * bp_rp)
    ) / u.um
    out["pseudocolour"] = np.full(n_stars, np.nan) / u.um
    out["ecl_lat"] = pos.transform_to(BarycentricMeanEcliptic()).lat.to(u.deg)
    out["astrometric_params_solved"] = np.full(n_stars, _FIVE_PARAM, dtype=np.int16)
    if zero_point:
        out["parallax"] += apply_zeropoint(out)["zpt"]
    out["true_distance"] = r * u.pc
    out["true_member"] = member
    out.meta["truth"] = {
        "D": d,
        "approx_size": sigma * d,
        "L": scale,
        "Q": float(fraction),
        "n_members": n_mem,
    }
    return out


def _source_ids(rng, n):
    """Distinct 64-bit identifiers in the range Gaia DR3 uses."""
    ids = rng.choice(2**40, size=n, replace=False).astype(np.int64)
    return np.sort(ids + np.int64(2**59))
