"""Gaia-like synthetic star fields with known truth.

`cluster_field` draws a field exactly from the model `ClusterDistance` fits:
each star is a cluster member with probability ``Q``, at a distance that is
log-normal around ``D`` with width ``sigma = approx_size / D``, or a field
star at an EDSD distance with length scale ``L``. The observables look like a
Gaia DR3 cone search: positions, proper motions, G magnitude and BP-RP colour,
and a parallax with the DR3 error for the star's magnitude plus the
Lindegren et al. (2021) zero point, so that `gaiadist.apply_zeropoint`
removes it exactly.

Proper motions and positions follow a model of the kind astronomers fit to
select members (Cantat-Gaudin et al. 2018; Hunt & Reffert 2023): members
move with the cluster's proper motion plus an intrinsic velocity dispersion
(in km/s, so narrower in mas/yr for farther members), and lie on the sky in
a Plummer profile of half-number radius ``r50`` (pc) around the cone's
centre; field stars are uniform over the cone and move as a mixture of
Gaussians in proper motion. Every star has DR3-like parallax and proper
motion errors whose correlations it reports in the ``*_corr`` columns, and
its observed values are drawn with that covariance.

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

__all__ = ["M67_LIKE", "cluster_field", "parallax_error_dr3", "true_parameters"]

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
#: km/s of transverse velocity per mas/yr of proper motion at 1 kpc.
_KMS_PER_MASYR_KPC = 4.740470446
#: DR3 proper motion errors (mas/yr) per parallax error (mas), about 1 at
#: every magnitude (Lindegren et al. 2021, table 4).
_PM_ERROR_RATIO = 1.0
#: Largest |correlation| between a star's parallax and proper motion errors.
_MAX_CORR = 0.3

#: The field's proper motions in `cluster_field`: (weight, pmra, pmdec, sd)
#: of round Gaussians in mas/yr, a disc-like core and a broad halo.
FIELD_MOTION = ((0.7, -2.0, -3.0, 3.0), (0.3, 0.0, -1.0, 8.0))
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
    r50: u.Quantity = 3 * u.pc,
    proper_motion: u.Quantity = (-11.0, -3.0) * u.mas / u.yr,
    velocity_dispersion: u.Quantity = 1.0 * u.km / u.s,
    outlier_share: float = 0.0,
    outlier_widen: float = 4.0,
    field_motion: tuple[tuple[float, float, float, float], ...] = FIELD_MOTION,
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
    r50 : `~astropy.units.Quantity`, optional
        The members' projected half-number radius: a Plummer profile of that
        scale at distance ``D``, cut at the cone's edge.
    proper_motion : `~astropy.units.Quantity`, optional
        The cluster's mean proper motion (pmra, pmdec).
    velocity_dispersion : `~astropy.units.Quantity`, optional
        The members' one-dimensional velocity dispersion on the sky: at a
        distance ``r`` a proper motion spread of ``v / (4.74047 r)``.
    outlier_share : float, optional
        The share of the cluster's stars that are outliers (0 by default):
        their velocity dispersion is ``outlier_widen`` times the members'.
    outlier_widen : float, optional
        The outliers' dispersion over the members' (more than 1).
    field_motion : tuple of (weight, pmra, pmdec, sd), optional
        The field's proper motions, a mixture of round Gaussians (mas/yr).
    zero_point : bool, optional
        Add the Lindegren et al. (2021) parallax zero point to ``parallax``.
    seed : int, optional
        Seed of the random generator.

    Returns
    -------
    `~astropy.table.QTable`
        Gaia DR3 columns (``source_id``, ``ra``, ``dec``, ``parallax``,
        ``parallax_error``, ``pmra``, ``pmra_error``, ``pmdec``,
        ``pmdec_error``, ``parallax_pmra_corr``, ``parallax_pmdec_corr``,
        ``pmra_pmdec_corr``, ``phot_g_mean_mag``, ``bp_rp``, and the zero
        point's inputs) plus the truth per star, ``true_distance`` and
        ``true_member`` (the cluster's stars, outliers included) and
        ``true_outlier``. ``meta["truth"]`` holds ``D``, ``approx_size``,
        ``r50`` and ``L`` (pc), ``Q``, ``n_members`` (the cluster's stars),
        ``n_outliers``, ``pmra`` and ``pmdec`` (mas/yr),
        ``velocity_dispersion`` (km/s), ``outlier_share``,
        ``outlier_widen`` and ``field_motion``.
    """
    if n_stars < 1:
        raise ValueError("n_stars must be positive")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be between 0 and 1")
    if not (0.0 <= outlier_share < 1.0 and outlier_widen > 1.0):
        raise ValueError(
            "outlier_share must be in [0, 1) and outlier_widen more than 1"
        )
    d = float(quantity_values(distance, u.pc, "distance"))
    sigma = float(quantity_values(size, u.pc, "size")) / d
    scale = float(quantity_values(length_scale, u.pc, "length_scale"))
    r50_pc = float(quantity_values(r50, u.pc, "r50"))
    centre = quantity_values(proper_motion, u.mas / u.yr, "proper_motion")
    if centre.shape != (2,):
        raise ValueError("proper_motion must be two values, pmra and pmdec")
    dispersion = float(
        quantity_values(velocity_dispersion, u.km / u.s, "velocity_dispersion")
    )
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
    noise = rng.normal(size=(3, n_stars))  # parallax, pmra, pmdec
    parallax = 1000.0 / r + err * noise[0]
    cone = float(quantity_values(radius, u.deg, "radius"))
    a = np.degrees(r50_pc / d)
    sep = cone * np.sqrt(rng.random(n_stars))
    sep[member] = _plummer_radii(rng, n_mem, a, cone)
    pos = center.directional_offset_by(
        rng.uniform(0, 360, n_stars) * u.deg, sep * u.deg
    )
    corr = rng.uniform(-_MAX_CORR, _MAX_CORR, (3, n_stars))
    # Drawn only where there are outliers, so that other fields stay as
    # they were for a seed.
    outlier = np.zeros(n_stars, bool)
    if outlier_share > 0:
        outlier[member] = rng.random(n_mem) < outlier_share
    widen = np.where(outlier, outlier_widen, 1.0)
    true_pm = _true_motions(rng, member, r, centre, dispersion * widen, field_motion)
    pm_err = err * _PM_ERROR_RATIO
    pm = true_pm + _correlated(noise, err, pm_err, corr)[1:]

    out = QTable()
    out["source_id"] = _source_ids(rng, n_stars)
    out["ra"] = pos.ra.to(u.deg)
    out["dec"] = pos.dec.to(u.deg)
    out["parallax"] = parallax * u.mas
    out["parallax_error"] = err * u.mas
    out["pmra"] = pm[0] * u.mas / u.yr
    out["pmra_error"] = pm_err * u.mas / u.yr
    out["pmdec"] = pm[1] * u.mas / u.yr
    out["pmdec_error"] = pm_err * u.mas / u.yr
    out["parallax_pmra_corr"] = corr[0]
    out["parallax_pmdec_corr"] = corr[1]
    out["pmra_pmdec_corr"] = corr[2]
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
    out["true_outlier"] = outlier
    out.meta["truth"] = {
        "D": d,
        "approx_size": sigma * d,
        "L": scale,
        "Q": float(fraction),
        "n_members": n_mem,
        "r50": r50_pc,
        "pmra": float(centre[0]),
        "pmdec": float(centre[1]),
        "velocity_dispersion": dispersion,
        "outlier_share": float(outlier_share),
        "outlier_widen": float(outlier_widen),
        "n_outliers": int(np.count_nonzero(outlier)),
        "field_motion": [[float(x) for x in c] for c in field_motion],
    }
    return out


def _plummer_radii(rng, n: int, a: float, edge: float) -> np.ndarray:
    """Projected radii (deg) from a Plummer profile of scale ``a``, cut at ``edge``.

    The projected profile holds ``R^2 / (R^2 + a^2)`` of its stars inside
    ``R``, so ``a`` is the half-number radius; inverting that fraction,
    limited to what lies inside ``edge``, gives the radii.
    """
    inside = edge**2 / (edge**2 + a**2)
    f = inside * rng.random(n)
    return a * np.sqrt(f / (1.0 - f))


def _true_motions(rng, member, r, centre, dispersion, field_motion) -> np.ndarray:
    """True proper motions (mas/yr), shape (2, n): cluster and field.

    ``dispersion`` (km/s) is one value or one per star.
    """
    n = member.size
    out = np.empty((2, n))
    spread = np.broadcast_to(dispersion, (n,))[member] / (
        _KMS_PER_MASYR_KPC * r[member] / 1000.0
    )
    out[:, member] = centre[:, None] + spread * rng.normal(size=(2, member.sum()))
    weights = np.array([c[0] for c in field_motion], dtype=float)
    which = rng.choice(len(field_motion), size=n, p=weights / weights.sum())
    means = np.array([c[1:3] for c in field_motion], dtype=float)[which].T
    sds = np.array([c[3] for c in field_motion], dtype=float)[which]
    field = means + sds * rng.normal(size=(2, n))
    out[:, ~member] = field[:, ~member]
    return out


def _correlated(noise, plx_err, pm_err, corr) -> np.ndarray:
    """Errors with each star's 3x3 covariance, from unit normal ``noise``.

    The covariance's Cholesky factor is lower triangular, so the parallax
    error is ``plx_err * noise[0]``, whatever the correlations.
    """
    cov = np.empty((plx_err.size, 3, 3))
    sd = np.stack([plx_err, pm_err, pm_err], axis=1)
    rho = np.ones((plx_err.size, 3, 3))
    rho[:, 0, 1] = rho[:, 1, 0] = corr[0]
    rho[:, 0, 2] = rho[:, 2, 0] = corr[1]
    rho[:, 1, 2] = rho[:, 2, 1] = corr[2]
    cov[:] = rho * sd[:, :, None] * sd[:, None, :]
    chol = np.linalg.cholesky(cov)
    return np.einsum("nij,jn->in", chol, noise)


def _source_ids(rng, n):
    """Distinct 64-bit identifiers in the range Gaia DR3 uses."""
    ids = rng.choice(2**40, size=n, replace=False).astype(np.int64)
    return np.sort(ids + np.int64(2**59))


def true_parameters(truth: dict) -> dict:
    """A simulation's truth as parameters of the astrometric cluster model.

    Parameters
    ----------
    truth : dict
        ``meta["truth"]`` of a `cluster_field` table.

    Returns
    -------
    dict
        The parameters `gaiadist.astrometric.component_log_likelihoods`
        takes: the cluster's (its outliers as made; none for a field made
        without), the cluster at the
        footprint's centre (``centre_x = centre_y = 0``), and the field's
        proper motion mixture as it was made (round Gaussians, as many as
        it had).
    """
    motion = np.asarray(truth["field_motion"], float)
    return {
        "log_D": np.log(truth["D"]),
        "log_sigma": np.log(truth["approx_size"] / truth["D"]),
        "Q": truth["Q"],
        "log_L": np.log(truth["L"]),
        "pmra": truth["pmra"],
        "pmdec": truth["pmdec"],
        "log_dispersion": np.log(truth["velocity_dispersion"]),
        "outlier_share": truth.get("outlier_share", 0.0),
        "log_outlier_widen": np.log(truth.get("outlier_widen", 3.0) - 1.0),
        "log_r50": np.log(truth["r50"]),
        "centre_x": 0.0,
        "centre_y": 0.0,
        "field_weights": motion[:, 0] / motion[:, 0].sum(),
        "field_pm": motion[:, 1:3],
        "log_field_sd": np.log(np.repeat(motion[:, 3:4], 2, axis=1)),
    }
