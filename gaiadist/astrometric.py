"""The astrometric cluster model's likelihood: parallax, proper motion and position.

Each star is a cluster member with probability ``Q`` or a field star. Given
its true distance ``r``, its parallax and proper motion are jointly Gaussian,
with mean ``(1000 / r, mu)`` and covariance ``C + S``: ``C`` the star's own
3x3 covariance from Gaia's ``*_error`` and ``*_corr`` columns, ``S`` the
component's intrinsic spread in proper motion. ``S`` touches only the proper
motions, so the joint density factors into the parallax likelihood and the
proper motions given the parallax,

    N(plx | w, C_pp) * N2(pm | mu + g (plx - w), C_mm - C_mp C_pm / C_pp + S),

with ``w = 1000 / r`` and ``g = C_mp / C_pp`` (`AstrometricStars.gain`).

- cluster: ``ln r ~ Normal(ln D, sigma)``; proper motions around
  ``(pmra, pmdec)`` with an isotropic velocity dispersion ``v`` (km/s), that is
  ``v / (4.74047 r / kpc)`` mas/yr at distance ``r``; on the sky a Plummer
  profile of half-number radius ``r50`` (pc, so ``r50 / D`` in angle) around
  the footprint's centre, cut at its edge.
- field: the EDSD prior with length scale ``L``; proper motions from a mixture
  of Gaussians with free weights, means and (axis-aligned) widths; uniform
  over the footprint, a cone of radius ``edge`` around the centre.

The distance is integrated out per star on the Gauss-Hermite nodes of the
parallax-only model (`gaiadist.likelihood.fast_nodes`), held fixed, so the
whole log likelihood is a smooth function of the parameters that JAX
differentiates. A new observable is one more term at the nodes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from .columns import column_values, quantity_values
from .exceptions import InputError
from .likelihood import EDSDLogPrior, GaussianLogPrior, _log_integrand_at, fast_nodes
from .stars import DistanceFlag, parallax_inputs

__all__ = [
    "KMS_PER_MASYR_KPC",
    "AstrometricStars",
    "astrometric_stars",
    "component_log_likelihoods",
    "log_likelihood",
    "membership",
]

#: Transverse velocity in km/s of one mas/yr of proper motion at 1 kpc.
KMS_PER_MASYR_KPC = 4.740470446
_LN_2PI = math.log(2.0 * math.pi)
#: The proper motion columns, their errors and their correlations.
_PM = ("pmra", "pmdec")
_CORR = ("parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr")


class AstrometricStars(NamedTuple):
    """One cluster's stars as the astrometric model sees them (a JAX pytree).

    Attributes
    ----------
    plx, err : array, shape (n,)
        Parallax (zero point corrected) and its error, mas.
    pm : array, shape (n, 2)
        Proper motion (pmra, pmdec), mas/yr.
    gain : array, shape (n, 2)
        Shift of the expected proper motion per mas of parallax residual,
        ``C_mp / C_pp`` (mas/yr per mas).
    cov : array, shape (n, 2, 2)
        Covariance of the proper motions given the parallax,
        ``C_mm - C_mp C_pm / C_pp``, (mas/yr)^2.
    radius : array, shape (n,)
        Angular distance from the footprint's centre, deg.
    edge : array, shape ()
        Radius of the footprint, deg.
    weight : array, shape (n,)
        1 for a star, 0 for padding.
    """

    plx: jax.Array
    err: jax.Array
    pm: jax.Array
    gain: jax.Array
    cov: jax.Array
    radius: jax.Array
    edge: jax.Array
    weight: jax.Array


def astrometric_stars(
    table: Table, centre: SkyCoord, edge: u.Quantity
) -> tuple[AstrometricStars, np.ndarray]:
    """The astrometric inputs of ``table``'s stars, and each row's flags.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Gaia sources with ``ra``, ``dec``, ``parallax_corrected`` (or
        ``parallax``), ``parallax_error``, ``pmra``, ``pmdec``, their errors
        and the correlations ``parallax_pmra_corr``, ``parallax_pmdec_corr``,
        ``pmra_pmdec_corr``.
    centre : `~astropy.coordinates.SkyCoord`
        Centre of the footprint.
    edge : `~astropy.units.Quantity`
        Radius of the footprint (an angle): the field is uniform inside it.

    Returns
    -------
    stars : AstrometricStars
        Float64 NumPy arrays of the usable rows (flag 0), in order.
    flag : `numpy.ndarray`
        `~gaiadist.DistanceFlag` bits of every row: ``NO_PARALLAX`` and
        ``BAD_ERROR`` as for the parallax, and for proper motions, errors or
        correlations that are missing or not a valid covariance; rows
        outside the footprint get ``EXCLUDED``.

    Raises
    ------
    InputError
        If a column is missing or in a wrong unit.
    """
    edge_deg = float(quantity_values(edge, u.deg, "edge"))
    if not edge_deg > 0:
        raise InputError(f"edge must be a positive angle, not {edge}")
    _, plx, err, flag = parallax_inputs(table)
    pm = np.stack([column_values(table, c, u.mas / u.yr) for c in _PM], axis=1)
    pm_err = np.stack(
        [column_values(table, f"{c}_error", u.mas / u.yr) for c in _PM], axis=1
    )
    rho = [column_values(table, c, "") for c in _CORR]
    sd = np.concatenate([err[:, None], pm_err], axis=1)
    full = np.ones((len(table), 3, 3))
    for (i, j), r in zip(((0, 1), (0, 2), (1, 2)), rho, strict=True):
        full[:, i, j] = full[:, j, i] = r
    full *= sd[:, :, None] * sd[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = full[:, 0, 1:] / full[:, 0, 0, None]
        cov = full[:, 1:, 1:] - gain[:, :, None] * full[:, 0, None, 1:]
        det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2
        good = (
            np.all(np.isfinite(pm), axis=1)
            & np.all(np.isfinite(pm_err) & (pm_err > 0), axis=1)
            & np.all(np.isfinite(np.stack(rho)), axis=0)
            & (det > 0)
            & (cov[:, 0, 0] > 0)
        )
    flag[~good] |= np.uint8(DistanceFlag.BAD_ERROR)
    where = SkyCoord(
        column_values(table, "ra", u.deg) * u.deg,
        column_values(table, "dec", u.deg) * u.deg,
    )
    radius = centre.separation(where).deg
    flag[~(radius < edge_deg)] |= np.uint8(DistanceFlag.EXCLUDED)
    use = flag == 0
    stars = AstrometricStars(
        plx=plx[use],
        err=err[use],
        pm=pm[use],
        gain=gain[use],
        cov=cov[use],
        radius=radius[use],
        edge=np.asarray(edge_deg),
        weight=np.ones(int(use.sum())),
    )
    return stars, flag


def component_log_likelihoods(params: dict, stars: AstrometricStars):
    """Each star's log likelihood under the cluster and under the field.

    Parameters
    ----------
    params : dict
        ``log_D``, ``log_sigma`` (width of ``ln r``), ``Q``, ``log_L``,
        ``pmra``, ``pmdec`` (mas/yr), ``log_dispersion`` (velocity
        dispersion, km/s), ``log_r50`` (pc), and the field's proper motion
        mixture: ``field_weights`` (K,) summing to 1, ``field_pm`` (K, 2)
        means (mas/yr) and ``log_field_sd`` (K, 2) widths.
    stars : AstrometricStars
        The stars.

    Returns
    -------
    cluster, field : array, shape (n,)
        ``ln Q + ln p(star | cluster)`` and ``ln(1 - Q) + ln p(star | field)``,
        the distance integrated out on fixed nodes.
    """
    q = params["Q"]
    cluster = GaussianLogPrior(params["log_D"], jnp.exp(params["log_sigma"]))
    field = EDSDLogPrior(params["log_L"])
    plx, err = stars.plx, stars.err
    parts = []
    for prior, motion, sky in (
        (cluster, _cluster_motion, _cluster_sky),
        (field, _field_motion, _field_sky),
    ):
        offsets, log_weights = fast_nodes(plx, err, prior)
        # Nodes along the first axis, stars along the second.
        offsets, log_weights = offsets.T, log_weights.T
        u_nodes = jax.lax.stop_gradient(prior.mode)[None] + offsets
        h = (
            log_weights
            + _log_integrand_at(plx[None], err[None], prior, offsets)
            + motion(params, stars, u_nodes)
        )
        parts.append(jax.nn.logsumexp(h, axis=0) + sky(params, stars))
    return jnp.log(q) + parts[0], jnp.log1p(-q) + parts[1]


def log_likelihood(params: dict, stars: AstrometricStars) -> jax.Array:
    """``sum_n weight_n ln p(star_n | params)``: the mixture, distances integrated."""
    c, f = component_log_likelihoods(params, stars)
    return jnp.sum(stars.weight * jnp.logaddexp(c, f))


def membership(params: dict, stars: AstrometricStars) -> jax.Array:
    """Each star's probability of belonging to the cluster, for one ``params``."""
    c, f = component_log_likelihoods(params, stars)
    return jnp.exp(c - jnp.logaddexp(c, f))


def _expected_shift(stars: AstrometricStars, u_nodes):
    """Proper motion less the part its error shares with the parallax's, (J, n, 2).

    At a node of true parallax ``w`` the parallax residual ``plx - w``
    predicts ``gain (plx - w)`` of the proper motion residual.
    """
    w = 1000.0 * jnp.exp(-u_nodes)  # (J, n)
    return stars.pm[None] - stars.gain[None] * (stars.plx[None] - w)[..., None]


def _log_normal2(d, cov):
    """``ln N2(d | 0, cov)`` for 2-vectors ``d`` (..., 2) and ``cov`` (..., 2, 2)."""
    a, b, c = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    det = a * c - b * b
    quad = c * d[..., 0] ** 2 - 2.0 * b * d[..., 0] * d[..., 1] + a * d[..., 1] ** 2
    return -_LN_2PI - 0.5 * jnp.log(det) - 0.5 * quad / det


def _cluster_motion(params, stars, u_nodes):
    """``ln N2`` of the proper motions given the parallax, at each node (J, n)."""
    centre = jnp.stack([params["pmra"], params["pmdec"]])
    d = _expected_shift(stars, u_nodes) - centre
    # The intrinsic spread in mas/yr at each node's distance r = e^u pc.
    spread = jnp.exp(params["log_dispersion"]) / (
        KMS_PER_MASYR_KPC * jnp.exp(u_nodes) / 1000.0
    )
    cov = stars.cov[None] + (spread * spread)[..., None, None] * jnp.eye(2)
    return _log_normal2(d, cov)


def _field_motion(params, stars, u_nodes):
    """``ln`` of the field's proper motion mixture given the parallax (J, n)."""
    means = params["field_pm"]  # (K, 2)
    var = jnp.exp(2.0 * params["log_field_sd"])  # (K, 2)
    d = _expected_shift(stars, u_nodes)[:, :, None, :] - means  # (J, n, K, 2)
    cov = stars.cov[None, :, None] + var[None, None, :, :, None] * jnp.eye(2)
    log_k = _log_normal2(d, cov) + jnp.log(params["field_weights"])
    return jax.nn.logsumexp(log_k, axis=-1)


def _cluster_sky(params, stars):
    """Log density (per deg^2) of a truncated Plummer profile at each star."""
    a = jnp.degrees(jnp.exp(params["log_r50"] - params["log_D"]))
    a2, r2, e2 = a * a, stars.radius**2, stars.edge**2
    inside = e2 / (e2 + a2)  # the profile's share inside the footprint
    return jnp.log(a2 / jnp.pi) - 2.0 * jnp.log(a2 + r2) - jnp.log(inside)


def _field_sky(params, stars):
    """Log density (per deg^2) of a field uniform over the footprint."""
    return -jnp.log(jnp.pi * stars.edge**2) + 0.0 * stars.radius
