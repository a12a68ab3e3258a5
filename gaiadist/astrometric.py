"""The astrometric cluster model's likelihood: parallax, proper motion and position.

Each star is a cluster member with probability ``Q`` or a field star; its
parallax and proper motion are jointly Gaussian given its true distance
``r``, with mean ``(1000 / r, mu)`` and covariance ``C + S``: ``C`` the
star's own 3x3 covariance from Gaia's ``*_error`` and ``*_corr`` columns,
``S`` the component's intrinsic spread in proper motion. Factored the other
way round from the usual, proper motion first,

    N2(pm | mu, C_mm + S) * N(plx - h (pm - mu) | 1000 / r, C_pp - h C_mp),

with ``h = C_pm (C_mm + S)^-1``: the proper motions need no quadrature, and
the parallax is one with a shifted value and a smaller error, whose
distance is integrated out on the parallax-only model's Gauss-Hermite
nodes (`gaiadist.likelihood.fast_nodes`), held fixed.

- cluster: ``ln r ~ Normal(ln D, sigma)``; proper motions around
  ``(pmra, pmdec)`` with an isotropic velocity dispersion ``v`` (km/s), that is
  ``v / (4.74047 D / kpc)`` mas/yr at the cluster's distance (its depth is
  a few per cent of ``D`` at most); on the sky a Plummer
  profile of half-number radius ``r50`` (pc, so ``r50 / D`` in angle) around
  a free centre, normalised over the footprint.
- field: the EDSD prior with length scale ``L``; proper motions from a mixture
  of Gaussians with free weights, means and (axis-aligned) widths; uniform
  over the footprint. For the field the correlations between a star's
  parallax and proper motion errors are left out (``h = 0``, ``C_mm`` as
  published): against the field's broad distributions they change little,
  and a shifted parallax per Gaussian of the mixture would cost a
  quadrature each.

The footprint (`Footprint`) is where the stars were selected: a cone (as
`gaiadist.query_cone` returns) or a box in ra and dec, both described in the
gnomonic tangent plane about its centre. Over a box the Plummer profile's
share inside is in closed form; over a cone it is a short integral over
the position angle about the cluster's centre.

The whole log likelihood is a smooth function of the parameters that JAX
differentiates; a new observable is one more term.
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
from .likelihood import EDSDLogPrior, GaussianLogPrior, _log_distance_integral
from .marginal import pad
from .selection import ParallaxCut, mixture_log_selected, pad_cut
from .stars import DistanceFlag, parallax_inputs

__all__ = [
    "KMS_PER_MASYR_KPC",
    "AstrometricStars",
    "Footprint",
    "astrometric_stars",
    "footprint_of",
    "pad_stars",
    "take_stars",
    "DistanceSeries",
    "FieldStars",
    "component_log_likelihoods",
    "distance_integrals",
    "distance_series",
    "field_log_likelihood",
    "log_likelihood",
    "membership",
    "membership_and_odds",
    "selection_log_likelihood",
]

#: Transverse velocity in km/s of one mas/yr of proper motion at 1 kpc.
KMS_PER_MASYR_KPC = 4.740470446
_LN_2PI = math.log(2.0 * math.pi)
#: The proper motion columns, their errors and their correlations.
_PM = ("pmra", "pmdec")
_CORR = ("parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr")
#: Largest share of a field's stars in the corners of the square around
#: their circle for `footprint_of` to take the footprint for a cone.
_CORNER_SHARE = 0.01
#: The fields of `AstrometricStars` that describe the footprint, not a star.
_SHARED = ("bounds", "radius", "scale")
#: Position angles of the integral over a cone's edge (`_plummer_in_cone`).
_N_ANGLES = 128
#: Chebyshev points of a `DistanceSeries`.
_SERIES_NODES = 24


class Footprint(NamedTuple):
    """Where a field's stars were selected on the sky.

    Positions are gnomonic (tangent plane) offsets ``x`` (east) and ``y``
    (north) from the centre, in deg. Make one with `Footprint.cone`,
    `Footprint.box` or `footprint_of`.

    Attributes
    ----------
    ra, dec : float
        The centre, deg.
    shape : {"cone", "box"}
        A cone of ``radius`` about the centre, or the box
        ``x_min < x < x_max``, ``y_min < y < y_max``.
    radius : float
        The cone's radius, deg (NaN for a box).
    bounds : tuple of float
        ``(x_min, x_max, y_min, y_max)``, deg: the box, or the square around
        the cone.
    """

    ra: float
    dec: float
    shape: str
    radius: float
    bounds: tuple[float, float, float, float]

    @classmethod
    def cone(cls, centre: SkyCoord, radius: u.Quantity) -> Footprint:
        """A cone of ``radius`` (an angle) about ``centre``."""
        r = float(quantity_values(radius, u.deg, "radius"))
        if not r > 0:
            raise InputError(f"the footprint's radius must be positive, not {radius}")
        return cls(
            float(centre.ra.deg), float(centre.dec.deg), "cone", r, (-r, r, -r, r)
        )

    @classmethod
    def box(
        cls, centre: SkyCoord, bounds: tuple[float, float, float, float]
    ) -> Footprint:
        """The box ``bounds = (x_min, x_max, y_min, y_max)`` (deg) about ``centre``."""
        x0, x1, y0, y1 = (float(b) for b in bounds)
        if not (x0 < 0 < x1 and y0 < 0 < y1):
            raise InputError(f"the box {bounds} must hold its centre")
        return cls(
            float(centre.ra.deg),
            float(centre.dec.deg),
            "box",
            math.nan,
            (x0, x1, y0, y1),
        )

    @property
    def centre(self) -> SkyCoord:
        """The centre, as a `~astropy.coordinates.SkyCoord`."""
        return SkyCoord(self.ra * u.deg, self.dec * u.deg)

    @property
    def area(self) -> float:
        """Solid angle in the tangent plane, deg^2."""
        if self.shape == "cone":
            return math.pi * self.radius**2
        x0, x1, y0, y1 = self.bounds
        return (x1 - x0) * (y1 - y0)

    @property
    def scale(self) -> float:
        """Half the footprint's width, deg: the unit of the cluster centre's offset."""
        x0, x1, y0, y1 = self.bounds
        return 0.25 * (x1 - x0 + y1 - y0)

    def offsets(self, ra, dec) -> np.ndarray:
        """Gnomonic offsets ``(x, y)`` (deg), shape (n, 2), of positions in deg."""
        a0, d0 = np.radians(self.ra), np.radians(self.dec)
        a, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
        cos_c = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
        with np.errstate(invalid="ignore", divide="ignore"):
            x = np.cos(d) * np.sin(a - a0) / cos_c
            y = (
                np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)
            ) / cos_c
        xy = np.degrees(np.stack([x, y], axis=1))
        xy[~(cos_c > 0)] = np.nan
        return xy

    def position(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Positions (ra, dec, deg) of gnomonic offsets (deg): `offsets` inverted."""
        a0, d0 = np.radians(self.ra), np.radians(self.dec)
        xi, eta = np.radians(np.asarray(x, float)), np.radians(np.asarray(y, float))
        across = np.cos(d0) - eta * np.sin(d0)
        ra = np.degrees(a0 + np.arctan2(xi, across)) % 360.0
        dec = np.degrees(
            np.arctan2(np.sin(d0) + eta * np.cos(d0), np.hypot(xi, across))
        )
        return ra, dec

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Whether each offset (n, 2) lies inside the footprint."""
        x, y = xy[:, 0], xy[:, 1]
        with np.errstate(invalid="ignore"):
            if self.shape == "cone":
                return np.hypot(x, y) < self.radius
            x0, x1, y0, y1 = self.bounds
            return (x > x0) & (x < x1) & (y > y0) & (y < y1)

    def describe(self) -> dict:
        """The footprint as plain values, for ``meta``."""
        out = {"shape": self.shape, "ra_deg": self.ra, "dec_deg": self.dec}
        if self.shape == "cone":
            out["radius_deg"] = self.radius
        else:
            out["bounds_deg"] = list(self.bounds)
        out["area_deg2"] = self.area
        return out


def footprint_of(table: Table) -> Footprint:
    """The footprint a table of stars was selected from.

    A table from `gaiadist.query_cone` records its cone in ``meta``
    (``cone_ra``, ``cone_dec``, ``cone_rad``). Otherwise the footprint is
    read from the stars' positions: about the middle of their range in ra
    and dec, a cone of their largest offset when (almost) no star lies in
    the corners of the square around it, else the box of their extent.
    Stars outside it get the ``EXCLUDED`` flag.

    Raises
    ------
    InputError
        If ``ra`` or ``dec`` is missing or has no finite values.
    """
    meta = table.meta or {}
    if all(k in meta for k in ("cone_ra", "cone_dec", "cone_rad")):
        centre = SkyCoord(
            float(meta["cone_ra"]) * u.deg, float(meta["cone_dec"]) * u.deg
        )
        return Footprint.cone(centre, float(meta["cone_rad"]) * u.deg)
    ra = column_values(table, "ra", u.deg)
    dec = column_values(table, "dec", u.deg)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        raise InputError("the table has no finite ra and dec")
    # The middle of the range in ra, with ra taken about one star's so that
    # a field across ra = 0 is not split.
    wrapped = (ra[ok] - ra[ok][0] + 180.0) % 360.0 - 180.0
    mid_ra = (ra[ok][0] + 0.5 * (wrapped.min() + wrapped.max())) % 360.0
    mid_dec = 0.5 * (dec[ok].min() + dec[ok].max())
    centre = SkyCoord(mid_ra * u.deg, mid_dec * u.deg)
    probe = Footprint.cone(centre, 1.0 * u.deg)
    xy = probe.offsets(ra[ok], dec[ok])
    x0, y0 = np.min(xy, axis=0)
    x1, y1 = np.max(xy, axis=0)
    # Nudged outwards so that the outermost stars lie inside.
    nudge = 1e-6 * max(x1 - x0, y1 - y0)
    rho = np.hypot(xy[:, 0], xy[:, 1])
    inscribed = min(-x0, x1, -y0, y1)
    # A uniform box has a fifth of its stars outside its inscribed circle.
    if np.mean(rho > 1.02 * inscribed) < _CORNER_SHARE:
        return Footprint.cone(centre, float(rho.max() + nudge) * u.deg)
    return Footprint.box(centre, (x0 - nudge, x1 + nudge, y0 - nudge, y1 + nudge))


class AstrometricStars(NamedTuple):
    """One cluster's stars as the astrometric model sees them (a JAX pytree).

    Attributes
    ----------
    plx, err : array, shape (n,)
        Parallax (zero point corrected) and its error, mas.
    pmra, pmdec : array, shape (n,)
        Proper motion, mas/yr.
    cov_ra, cov_dec : array, shape (n,)
        Covariances of the parallax and the proper motions, ``C_pm``,
        mas^2/yr.
    var_ra, cov_radec, var_dec : array, shape (n,)
        Covariance of the proper motions, ``C_mm``, (mas/yr)^2.
    x, y : array, shape (n,)
        Offsets from the footprint's centre in its tangent plane, deg.
    bounds : array, shape (4,)
        The footprint's ``(x_min, x_max, y_min, y_max)``, deg.
    radius : array, shape ()
        The footprint's radius (deg) if it is a cone, else 0.
    scale : array, shape ()
        `Footprint.scale`, deg.
    weight : array, shape (n,)
        1 for a star, 0 for padding.
    cut : `~gaiadist.selection.ParallaxCut`, optional
        The parallax cut that made the sample, its interpolation weights
        one row per star: the likelihood is then normalised over what the
        cut keeps (`selection_log_likelihood`). None for an uncut sample.
    """

    plx: jax.Array
    err: jax.Array
    pmra: jax.Array
    pmdec: jax.Array
    cov_ra: jax.Array
    cov_dec: jax.Array
    var_ra: jax.Array
    cov_radec: jax.Array
    var_dec: jax.Array
    x: jax.Array
    y: jax.Array
    bounds: jax.Array
    radius: jax.Array
    scale: jax.Array
    weight: jax.Array
    cut: ParallaxCut | None = None


def astrometric_stars(
    table: Table, footprint: Footprint, parallax: tuple | None = None
) -> tuple[AstrometricStars, np.ndarray]:
    """The astrometric inputs of ``table``'s stars, and each row's flags.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Gaia sources with ``ra``, ``dec``, ``parallax_corrected`` (or
        ``parallax``), ``parallax_error``, ``pmra``, ``pmdec``, their errors
        and the correlations ``parallax_pmra_corr``, ``parallax_pmdec_corr``,
        ``pmra_pmdec_corr``.
    footprint : Footprint
        Where the stars were selected: the field is uniform inside it.
    parallax : tuple, optional
        ``(plx, err, flag)`` already read by `gaiadist.stars.parallax_inputs`
        (the flags may carry a cut); read from ``table`` by default.

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
    if parallax is None:
        _, plx, err, flag = parallax_inputs(table)
    else:
        plx, err, flag = parallax
        flag = flag.copy()
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
        det = np.linalg.det(np.where(np.isfinite(full), full, 0.0))
        cov = full[:, 1:, 1:]
        good = (
            np.all(np.isfinite(pm), axis=1)
            & np.all(np.isfinite(pm_err) & (pm_err > 0), axis=1)
            & np.all(np.isfinite(np.stack(rho)), axis=0)
            & (det > 0)
            & (cov[:, 0, 0] > 0)
        )
    flag[~good] |= np.uint8(DistanceFlag.BAD_ERROR)
    xy = footprint.offsets(
        column_values(table, "ra", u.deg), column_values(table, "dec", u.deg)
    )
    flag[~footprint.contains(xy)] |= np.uint8(DistanceFlag.EXCLUDED)
    use = flag == 0
    stars = AstrometricStars(
        plx=plx[use],
        err=err[use],
        pmra=pm[use, 0],
        pmdec=pm[use, 1],
        cov_ra=full[use, 0, 1],
        cov_dec=full[use, 0, 2],
        var_ra=cov[use, 0, 0],
        cov_radec=cov[use, 0, 1],
        var_dec=cov[use, 1, 1],
        x=xy[use, 0],
        y=xy[use, 1],
        bounds=np.asarray(footprint.bounds, float),
        radius=np.asarray(footprint.radius if footprint.shape == "cone" else 0.0),
        scale=np.asarray(footprint.scale),
        weight=np.ones(int(use.sum())),
    )
    return stars, flag


def pad_stars(stars: AstrometricStars, size: int, dtype) -> AstrometricStars:
    """``stars`` padded to ``size`` rows of zero weight, as arrays of ``dtype``.

    The padding is a harmless star (1 mas, at the centre, on the cluster's
    mean motion of no one) that weighs nothing.
    """
    fills = {"plx": 1.0, "err": 0.1, "var_ra": 1.0, "var_dec": 1.0}
    return AstrometricStars(
        **{
            name: np.asarray(values, dtype)
            if name in _SHARED
            else pad(np.asarray(values), size, fills.get(name, 0.0)).astype(dtype)
            for name, values in stars._asdict().items()
            if name != "cut"
        },
        cut=pad_cut(stars.cut, size, dtype),
    )


def component_log_likelihoods(params: dict, stars: AstrometricStars):
    """Each star's log likelihood under the cluster and under the field.

    Parameters
    ----------
    params : dict
        ``log_D``, ``log_sigma`` (width of ``ln r``), ``Q``, ``log_L``,
        ``pmra``, ``pmdec`` (mas/yr), ``log_dispersion`` (velocity
        dispersion, km/s), ``log_r50`` (pc), the cluster's centre on the
        sky, ``centre_x`` and ``centre_y`` (offsets from the footprint's
        centre in units of `Footprint.scale`), and the field's proper motion
        mixture: ``field_weights`` (K,) summing to 1, ``field_pm`` (K, 2)
        means (mas/yr) and ``log_field_sd`` (K, 2) widths; optionally
        ``field_on`` (K,), 0 for a Gaussian left out (its weight is shared
        among the others) and 1 for one used.
    stars : AstrometricStars
        The stars.

    Returns
    -------
    cluster, field : array, shape (n,)
        ``ln Q + ln p(star | cluster)`` and ``ln(1 - Q) + ln p(star | field)``,
        the distance integrated out on fixed nodes.
    """
    members, outliers = _cluster_parts(params, stars)
    return (
        jnp.log(params["Q"]) + jnp.logaddexp(members, outliers),
        field_log_likelihood(params, stars),
    )


def field_log_likelihood(
    params: dict, stars: AstrometricStars, *, distance: bool = True
):
    """Each star's ``ln(1 - Q) + ln p(star | field)`` (`component_log_likelihoods`).

    With ``distance=False``, without the parallax's term (the distance
    integral), which depends on ``log_L`` alone (`distance_series`).
    """
    value = jnp.log1p(-params["Q"]) + _field_motion(params, stars)
    value = value + _field_sky(params, stars)
    if not distance:
        return value
    field = EDSDLogPrior(params["log_L"])
    return value + _log_distance_integral(stars.plx, stars.err, field)


class DistanceSeries(NamedTuple):
    """A sum of field stars' distance integrals as a function of ``ln L``.

    ``S(ln L) = sum_n weight_n ln ∫ N(plx_n | 1000 / r, err_n) EDSD(r | L) dr``
    as a Chebyshev series on ``[mid - half, mid + half]``, continued beyond
    by its second-order Taylor expansion at the nearer end (its curvature
    capped at 0), so that a value far outside stays finite and pulls back
    (`distance_series`; evaluate with `DistanceSeries.value`).

    Attributes
    ----------
    mid, half : array, shape ()
        Centre and half width of the interval in ``ln(L / pc)``.
    coefs : array, shape (m,)
        Chebyshev coefficients in ``t = (ln L - mid) / half``.
    ends : array, shape (2, 2)
        Slope and curvature (per unit of ``ln L``) at the lower and the
        upper end.
    """

    mid: jax.Array
    half: jax.Array
    coefs: jax.Array
    ends: jax.Array

    def value(self, log_l) -> jax.Array:
        """``S(log_l)``."""
        t = jnp.clip((log_l - self.mid) / self.half, -1.0, 1.0)
        # Clenshaw's recurrence.
        b1, b2 = jnp.zeros_like(t), jnp.zeros_like(t)
        for k in range(self.coefs.shape[0] - 1, 0, -1):
            b1, b2 = 2.0 * t * b1 - b2 + self.coefs[k], b1
        inside = t * b1 - b2 + self.coefs[0]
        beyond = log_l - (self.mid + self.half * t)
        slope, curvature = jnp.where(log_l > self.mid, self.ends[1], self.ends[0])
        return inside + beyond * (slope + 0.5 * curvature * beyond)


class FieldStars(NamedTuple):
    """Stars taken for field stars, and their distance integrals' `DistanceSeries`."""

    stars: AstrometricStars
    distance: DistanceSeries


def distance_series(
    integrals, mid: float, half: float, nodes: int = _SERIES_NODES
) -> DistanceSeries:
    """The `DistanceSeries` of some stars over ``mid ± half`` in ``ln L``.

    Parameters
    ----------
    integrals : callable
        ``integrals(log_l)`` with ``log_l`` of shape (m,) gives the stars'
        weighted distance integrals, shape (m, n) (see `distance_integrals`).
    mid, half : float
        The interval's centre and half width in ``ln(L / pc)``.
    nodes : int
        Chebyshev points at which ``integrals`` is evaluated.

    Returns
    -------
    DistanceSeries
        The interpolating series, in float64. Each star's integral is taken
        relative to its value at ``mid`` before the sum, so that a sum over
        many stars keeps the precision of one.
    """
    cheb = np.polynomial.chebyshev
    t = np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
    values = np.asarray(integrals(np.append(mid + half * t, mid)), float)
    sums = np.sum(values[:-1] - values[-1], axis=1) + np.sum(values[-1])
    coefs = cheb.chebfit(t, sums, nodes - 1)
    slope, curvature = cheb.chebder(coefs), cheb.chebder(coefs, 2)
    ends = np.array(
        [
            [cheb.chebval(e, slope) / half, min(cheb.chebval(e, curvature), 0.0)]
            for e in (-1.0, 1.0)
        ]
    )
    ends[:, 1] /= half * half
    return DistanceSeries(np.asarray(mid, float), np.asarray(half, float), coefs, ends)


def distance_integrals(log_l, stars: AstrometricStars) -> jax.Array:
    """``weight_n ln ∫ N(plx_n | 1000 / r, err_n) EDSD(r | L) dr``, ``(m, n)``.

    For each of the values ``log_l`` (m,) of ``ln(L / pc)``.
    """

    def one(value):
        field = EDSDLogPrior(value)
        return stars.weight * _log_distance_integral(stars.plx, stars.err, field)

    return jax.vmap(one)(log_l)


def log_likelihood(params: dict, stars: AstrometricStars) -> jax.Array:
    """``sum_n weight_n ln p(star_n | params)``: the mixture, distances integrated.

    With the stars' parallax cut (``stars.cut``) divided out
    (`selection_log_likelihood`).
    """
    c, f = component_log_likelihoods(params, stars)
    total = jnp.sum(stars.weight * jnp.logaddexp(c, f))
    return total + selection_log_likelihood(params, stars)


def selection_log_likelihood(params: dict, *groups: AstrometricStars) -> jax.Array:
    """``-sum_n weight_n ln(Q P_cluster,n + (1 - Q) P_field,n)`` for the cut.

    ``P`` is the fraction of each component that the parallax cut keeps at
    the star's parallax error and zero point
    (`gaiadist.selection.mixture_log_selected`); the proper motions and the
    position integrate out of it, so it is the parallax-only model's term.
    The sum runs over the stars of every group, which share one cut. It is
    0 for stars without a cut; ``params`` without ``log_D`` (the field
    alone) give ``-sum ln P_field``.
    """
    if groups[0].cut is None:
        return jnp.zeros(())
    cluster = None
    if "log_D" in params:
        cluster = GaussianLogPrior(params["log_D"], jnp.exp(params["log_sigma"]))
    return mixture_log_selected(
        params.get("Q"),
        cluster,
        EDSDLogPrior(params["log_L"]),
        [(stars.cut, stars.weight) for stars in groups],
    )


def take_stars(stars: AstrometricStars, index) -> AstrometricStars:
    """The stars ``index`` picks (NumPy indexing), in that order."""
    cut = stars.cut
    if cut is not None:
        cut = cut._replace(weights=np.asarray(cut.weights)[index])
    return stars._replace(
        **{
            k: np.asarray(v)[index]
            for k, v in stars._asdict().items()
            if k not in (*_SHARED, "cut")
        },
        cut=cut,
    )


def membership(params: dict, stars: AstrometricStars) -> tuple[jax.Array, jax.Array]:
    """Each star's probabilities of being a member and a cluster outlier.

    For one ``params``: the cluster's share of the star's likelihood split
    between its members and its outliers (`component_log_likelihoods`).
    """
    return _memberships(params, stars)[:2]


def _memberships(params, stars):
    """`membership`'s two probabilities and `component_log_likelihoods`' terms."""
    members, outliers = _cluster_parts(params, stars)
    log_q = jnp.log(params["Q"])
    c = log_q + jnp.logaddexp(members, outliers)
    f = field_log_likelihood(params, stars)
    total = jnp.logaddexp(c, f)
    return jnp.exp(log_q + members - total), jnp.exp(log_q + outliers - total), c, f


def membership_and_odds(params: dict, stars: AstrometricStars):
    """Each star's membership, and how far its other observables move it.

    Returns ``p_member`` and ``p_outlier`` (`membership`) and the log
    likelihood ratio, cluster over field,
    that the proper motions and the position add to the parallax's (with
    the parallax unshifted): `gaiadist.marginal.star_results` adds it to
    each draw's cluster component for the distances.
    """
    p_member, p_outlier, c, f = _memberships(params, stars)
    cluster = GaussianLogPrior(params["log_D"], jnp.exp(params["log_sigma"]))
    field = EDSDLogPrior(params["log_L"])
    c0 = _log_distance_integral(stars.plx, stars.err, cluster)
    f0 = _log_distance_integral(stars.plx, stars.err, field)
    odds = (c - jnp.log(params["Q"]) - c0) - (f - jnp.log1p(-params["Q"]) - f0)
    return p_member, p_outlier, odds


def _log_normal2(d0, d1, a, b, c):
    """``ln N2((d0, d1) | 0, [[a, b], [b, c]])``, elementwise."""
    det = a * c - b * b
    quad = c * d0 * d0 - 2.0 * b * d0 * d1 + a * d1 * d1
    return -_LN_2PI - 0.5 * jnp.log(det) - 0.5 * quad / det


def _cluster_parts(params, stars):
    """Each star's log likelihood as a member and as an outlier, given the cluster.

    ``ln(1 - h) + ln p(star | members)`` and ``ln h + ln p(star |
    outliers)``, ``h`` the outliers' share: both at the cluster's distance,
    on its Plummer profile and about its mean proper motion, the outliers'
    dispersion ``1 + e^k`` times the members' (``k = log_outlier_widen``).
    Each has its own parallax shift (`_cluster_motion`) and so its own
    distance integral.
    """
    cluster = GaussianLogPrior(params["log_D"], jnp.exp(params["log_sigma"]))
    spread = jnp.exp(params["log_dispersion"] - params["log_D"]) * (
        1000.0 / KMS_PER_MASYR_KPC
    )
    h = params["outlier_share"]
    sky = _cluster_sky(params, stars)
    parts = []
    for log_share, s in (
        (jnp.log1p(-h), spread),
        (jnp.log(h), spread * (1.0 + jnp.exp(params["log_outlier_widen"]))),
    ):
        motion, plx, err = _cluster_motion(params, stars, s)
        parts.append(
            log_share + motion + _log_distance_integral(plx, err, cluster) + sky
        )
    return parts


def _cluster_motion(params, stars, spread):
    """A cluster part's proper motion term, and the parallaxes and errors given it.

    Returns ``ln N2(pm | mu, C_mm + S)`` and the parallax ``plx - h (pm -
    mu)`` and its error ``sqrt(C_pp - h C_mp)``, ``h = C_pm (C_mm + S)^-1``,
    with ``S = spread^2`` (mas/yr) on both axes.
    """
    var = spread * spread
    a, b, c = stars.var_ra + var, stars.cov_radec, stars.var_dec + var
    d0, d1 = stars.pmra - params["pmra"], stars.pmdec - params["pmdec"]
    det = a * c - b * b
    # (C_mm + S)^-1 applied to the residual and to C_mp.
    s0, s1 = (c * d0 - b * d1) / det, (a * d1 - b * d0) / det
    t0 = (c * stars.cov_ra - b * stars.cov_dec) / det
    t1 = (a * stars.cov_dec - b * stars.cov_ra) / det
    log_motion = -_LN_2PI - 0.5 * jnp.log(det) - 0.5 * (d0 * s0 + d1 * s1)
    plx = stars.plx - (stars.cov_ra * s0 + stars.cov_dec * s1)
    var_plx = stars.err * stars.err - (stars.cov_ra * t0 + stars.cov_dec * t1)
    return log_motion, plx, jnp.sqrt(var_plx)


def _field_motion(params, stars):
    """``ln`` of the field's proper motion mixture (n,)."""
    var = jnp.exp(2.0 * params["log_field_sd"])  # (K, 2)
    log_w = jnp.log(params["field_weights"])
    if "field_on" in params:
        # Switched-off Gaussians weigh nothing, the others share their weight.
        on = params["field_on"] > 0
        total = jnp.sum(jnp.where(on, params["field_weights"], 0.0))
        log_w = jnp.where(on, log_w - jnp.log(total), -jnp.inf)
    terms = [
        log_w[k]
        + _log_normal2(
            stars.pmra - params["field_pm"][k, 0],
            stars.pmdec - params["field_pm"][k, 1],
            stars.var_ra + var[k, 0],
            stars.cov_radec,
            stars.var_dec + var[k, 1],
        )
        for k in range(var.shape[0])
    ]
    return jax.nn.logsumexp(jnp.stack(terms), axis=0)


def _cluster_sky(params, stars):
    """Log density (per deg^2) of a Plummer profile, normalised over the footprint."""
    a = jnp.degrees(jnp.exp(params["log_r50"] - params["log_D"]))
    centre = stars.scale * jnp.stack([params["centre_x"], params["centre_y"]])
    d2 = (stars.x - centre[0]) ** 2 + (stars.y - centre[1]) ** 2
    a2 = a * a
    # Both branches are computed; each must stay finite (and so must its
    # gradient) for the footprint it is not: a box has radius 0.
    cone = stars.radius > 0
    inside = jnp.where(
        cone,
        _plummer_in_cone(a2, centre, jnp.where(cone, stars.radius, 1.0)),
        _plummer_in_box(a, stars.bounds - jnp.repeat(centre, 2)),
    )
    return jnp.log(a2 / jnp.pi) - 2.0 * jnp.log(a2 + d2) - jnp.log(inside)


def _field_sky(params, stars):
    """Log density (per deg^2) of a field uniform over the footprint."""
    x0, x1, y0, y1 = stars.bounds
    area = jnp.where(stars.radius > 0, jnp.pi * stars.radius**2, (x1 - x0) * (y1 - y0))
    return -jnp.log(area) + jnp.zeros_like(stars.x)


def _plummer_in_box(a, bounds):
    """Share of a Plummer profile of scale ``a`` (deg) inside a box about its centre.

    ``bounds`` is ``(x_min, x_max, y_min, y_max)`` relative to the centre.
    The share of the quadrant ``0 < x' < x, 0 < y' < y`` is

        (x / b_x atan(y / b_x) + y / b_y atan(x / b_y)) / (2 pi),

    with ``b_x = sqrt(a^2 + x^2)``, ``b_y = sqrt(a^2 + y^2)``; odd in ``x``
    and in ``y``, so the box is four signed quadrants.
    """

    def quadrant(x, y):
        bx, by = jnp.sqrt(a * a + x * x), jnp.sqrt(a * a + y * y)
        return (x / bx * jnp.arctan(y / bx) + y / by * jnp.arctan(x / by)) / (
            2.0 * jnp.pi
        )

    x0, x1, y0, y1 = bounds
    return quadrant(x1, y1) - quadrant(x0, y1) - quadrant(x1, y0) + quadrant(x0, y0)


def _plummer_in_cone(a2, centre, radius):
    """Share of a Plummer profile (scale^2 ``a2``) at ``centre`` inside a cone.

    A Plummer profile holds ``s^2 / (a^2 + s^2)`` of its stars within ``s``
    of its centre, so the share is the mean over position angles ``phi``
    about the centre of that fraction at the distance ``s(phi)`` to the
    cone's edge; the integrand is smooth and periodic, so the trapezoid rule
    on `_N_ANGLES` angles converges geometrically.
    """
    phi = jnp.linspace(0.0, 2.0 * jnp.pi, _N_ANGLES, endpoint=False)
    along = centre[0] * jnp.cos(phi) + centre[1] * jnp.sin(phi)
    c2 = jnp.sum(centre * centre)
    s = -along + jnp.sqrt(jnp.maximum(radius * radius - c2 + along * along, 0.0))
    s2 = s * s
    return jnp.mean(s2 / (a2 + s2))
