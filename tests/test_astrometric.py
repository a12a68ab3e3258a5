"""The astrometric model's likelihood against brute-force integrals with scipy."""

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import QTable
from scipy import integrate, stats

from gaiadist import DistanceFlag, InputError
from gaiadist.astrometric import (
    KMS_PER_MASYR_KPC,
    AstrometricStars,
    DistanceSeries,
    Footprint,
    _plummer_in_box,
    _plummer_in_cone,
    astrometric_stars,
    component_log_likelihoods,
    distance_integrals,
    distance_series,
    footprint_of,
    log_likelihood,
    membership,
)

CENTRE = SkyCoord(132.846 * u.deg, 11.814 * u.deg)
EDGE = 0.5 * u.deg
FOOTPRINT = Footprint.cone(CENTRE, EDGE)

PARAMS = {
    "log_D": np.log(900.0),
    "log_sigma": np.log(0.01),
    "Q": 0.3,
    "log_L": np.log(500.0),
    "pmra": -11.0,
    "pmdec": -3.0,
    "log_dispersion": np.log(1.5),
    "outlier_share": 0.2,
    "log_outlier_widen": np.log(3.0),
    "log_r50": np.log(3.0),
    "centre_x": 0.0,
    "centre_y": 0.0,
    "field_weights": np.array([0.7, 0.3]),
    "field_pm": np.array([[-2.0, -3.0], [0.0, -1.0]]),
    "log_field_sd": np.log(np.array([[3.0, 2.5], [8.0, 7.0]])),
}

# parallax, its error, pmra, pmdec, their errors, the three correlations,
# and the offset from the centre (deg): kinds of star a cluster field holds.
STARS = [
    (1.11, 0.02, -11.1, -2.9, 0.02, 0.02, 0.1, -0.2, 0.05, 0.01),  # precise member
    (1.05, 0.30, -10.5, -3.4, 0.35, 0.30, 0.3, 0.25, -0.3, 0.12),  # faint member
    (2.50, 0.05, -1.0, -4.0, 0.06, 0.05, -0.1, 0.0, 0.2, 0.30),  # near field star
    (0.20, 0.10, 3.0, 1.0, 0.12, 0.10, 0.0, 0.0, 0.0, 0.45),  # far field star
    (-0.40, 0.50, -6.0, -2.0, 0.60, 0.55, 0.29, -0.29, 0.29, 0.05),  # negative
    (1.10, 0.05, -2.0, -3.0, 0.05, 0.05, 0.0, 0.0, 0.0, 0.02),  # right plx, field pm
    (1.12, 0.03, -12.2, -2.0, 0.03, 0.03, 0.25, -0.2, 0.1, 0.03),  # cluster outlier
]


def _table(rows=STARS):
    rows = np.array(rows, dtype=float).T
    where = CENTRE.directional_offset_by(
        np.linspace(0, 300, rows.shape[1]) * u.deg, rows[9] * u.deg
    )
    return QTable(
        {
            "source_id": np.arange(rows.shape[1], dtype=np.int64) + 2**60,
            "ra": where.ra.to(u.deg),
            "dec": where.dec.to(u.deg),
            "parallax_corrected": rows[0] * u.mas,
            "parallax_error": rows[1] * u.mas,
            "pmra": rows[2] * u.mas / u.yr,
            "pmdec": rows[3] * u.mas / u.yr,
            "pmra_error": rows[4] * u.mas / u.yr,
            "pmdec_error": rows[5] * u.mas / u.yr,
            "parallax_pmra_corr": rows[6],
            "parallax_pmdec_corr": rows[7],
            "pmra_pmdec_corr": rows[8],
        }
    )


def _brute_force(row, params):
    """ln Q p(star | cluster) and ln (1 - Q) p(star | field), with scipy alone.

    The full 3x3 Gaussian of (parallax, pmra, pmdec) at every distance of a
    dense grid in ln r, times the component's prior in ln r, integrated by
    the trapezoid rule; the sky densities integrated over the footprint
    numerically for their normalisation.
    """
    plx, err, pmra, pmdec, e_ra, e_dec, r_pra, r_pdec, r_radec, sep = row
    sd = np.array([err, e_ra, e_dec])
    rho = np.array([[1, r_pra, r_pdec], [r_pra, 1, r_radec], [r_pdec, r_radec, 1]])
    cov = rho * sd[:, None] * sd[None, :]
    obs = np.array([plx, pmra, pmdec])
    d, sigma = np.exp(params["log_D"]), np.exp(params["log_sigma"])
    length = np.exp(params["log_L"])

    def joint(u_grid, mean_pm, extra_var):
        """The 3-d Gaussian density of ``obs`` at each distance of the grid."""
        r = np.exp(u_grid)
        mean = np.empty((r.size, 3))
        mean[:, 0], mean[:, 1:] = 1000.0 / r, mean_pm
        extra = np.zeros((r.size, 3, 3))
        extra[:, 1, 1], extra[:, 2, 2] = np.broadcast_to(extra_var, (2, r.size))
        return _mvn3_pdf(obs, mean, cov + extra)

    # The cluster: ln r ~ Normal(ln D, sigma), the full 3x3 Gaussian; the
    # members' dispersion v / (4.74 D / kpc), the outliers' (a share h)
    # 1 + e^k times that.
    u_c = np.linspace(np.log(d) - 40 * sigma, np.log(d) + 40 * sigma, 8001)
    spread = np.exp(params["log_dispersion"]) / (KMS_PER_MASYR_KPC * d / 1e3)
    prior_c = stats.norm(np.log(d), sigma).pdf(u_c)
    centre = (params["pmra"], params["pmdec"])
    h, widen = params["outlier_share"], 1 + np.exp(params["log_outlier_widen"])
    like_c = integrate.trapezoid(
        prior_c
        * (
            (1 - h) * joint(u_c, centre, spread**2)
            + h * joint(u_c, centre, (widen * spread) ** 2)
        ),
        u_c,
    )
    # The field: EDSD in r, so r^3 e^(-r/L) / (2 L^3) in ln r, for the
    # parallax; its proper motions a mixture, independent of the parallax.
    u_f = np.linspace(np.log(1.0), np.log(60 * length), 20001)
    r_f = np.exp(u_f)
    prior_f = r_f**3 * np.exp(-r_f / length) / (2 * length**3)
    like_plx = integrate.trapezoid(
        prior_f * stats.norm(1000.0 / r_f, err).pdf(plx), u_f
    )
    like_pm = 0.0
    for w, mean, log_sd in zip(
        params["field_weights"],
        params["field_pm"],
        params["log_field_sd"],
        strict=True,
    ):
        like_pm += w * stats.multivariate_normal(
            mean, cov[1:, 1:] + np.diag(np.exp(2 * log_sd))
        ).pdf([pmra, pmdec])
    like_f = like_plx * like_pm
    # The sky: a Plummer profile a^2 / (pi (a^2 + R^2)^2), normalised over
    # the footprint numerically; the field uniform over it.
    a = np.degrees(np.exp(params["log_r50"]) / d)
    edge = EDGE.to_value(u.deg)

    def plummer(radius):
        return a * a / (np.pi * (a * a + radius * radius) ** 2)

    inside, _ = integrate.quad(lambda x: 2 * np.pi * x * plummer(x), 0, edge)
    q = params["Q"]
    with np.errstate(divide="ignore"):  # a component can underflow to 0
        return (
            np.log(q * like_c * plummer(sep) / inside),
            np.log((1 - q) * like_f / (np.pi * edge * edge)),
        )


def _mvn3_pdf(x, mean, cov):
    """Density of a 3-d Gaussian at ``x`` for many means and covariances."""
    d = x - mean
    _, logdet = np.linalg.slogdet(cov)
    quad = np.einsum("ni,ni->n", d, np.linalg.solve(cov, d[..., None])[..., 0])
    return np.exp(-0.5 * quad - 0.5 * logdet - 1.5 * np.log(2 * np.pi))


def test_the_reference_gaussian_is_scipys():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 3, 3))
    cov = a @ np.swapaxes(a, 1, 2) + np.eye(3)
    mean = rng.normal(size=(4, 3))
    x = rng.normal(size=3)
    want = [
        stats.multivariate_normal(m, c).pdf(x) for m, c in zip(mean, cov, strict=True)
    ]
    np.testing.assert_allclose(_mvn3_pdf(x, mean, cov), want, rtol=1e-12)


def test_component_likelihoods_match_brute_force_integrals():
    stars, flag = astrometric_stars(_table(), FOOTPRINT)
    assert np.all(flag == 0)
    with jax.enable_x64(True):
        params = {k: jnp.asarray(v, jnp.float64) for k, v in PARAMS.items()}
        got_c, got_f = component_log_likelihoods(
            params, jax.tree.map(jnp.asarray, stars)
        )
    for i, row in enumerate(STARS):
        want_c, want_f = _brute_force(row, PARAMS)
        total = np.logaddexp(want_c, want_f)
        assert float(np.logaddexp(got_c[i], got_f[i])) == pytest.approx(
            total, abs=1e-4
        ), i
        # Each component to the same accuracy wherever it matters: a
        # component 30 nats below the other is e^-30 of the star's
        # likelihood, and there only has to stay negligible.
        for got, want, name in ((got_c, want_c, "cluster"), (got_f, want_f, "field")):
            if want > total - 30:
                assert float(got[i]) == pytest.approx(want, abs=1e-4), (i, name)
            else:
                assert float(got[i]) < total - 25, (i, name)


def test_membership_uses_proper_motions():
    stars, _ = astrometric_stars(_table(), FOOTPRINT)
    p, outlier = (np.asarray(a) for a in membership(PARAMS, stars))
    assert p[0] > 0.95 and p[1] > 0.5  # on the cluster's motion and parallax
    assert p[2] < 1e-3 and p[3] < 1e-3
    # The cluster's parallax, the field's proper motion: not a member.
    assert p[5] < 1e-3 and outlier[5] < 1e-3
    # The cluster's parallax and position, 4.4 times the members' spread from
    # their motion (0.35 mas/yr): an outlier.
    assert p[6] < 0.01 and outlier[6] > 0.9
    # The two add up to the cluster's share of each star's likelihood.
    c, f = component_log_likelihoods(PARAMS, stars)
    assert np.asarray(p + outlier) == pytest.approx(
        np.exp(c - np.logaddexp(c, f)), rel=1e-5
    )
    # The total is the sum of the mixture over the stars.
    c, f = component_log_likelihoods(PARAMS, stars)
    total = log_likelihood(PARAMS, stars)
    assert float(total) == pytest.approx(float(np.sum(np.logaddexp(c, f))), rel=1e-6)


def test_gradients_are_finite_and_match_finite_differences():
    stars, _ = astrometric_stars(_table(), FOOTPRINT)
    with jax.enable_x64(True):
        stars = jax.tree.map(jnp.asarray, stars)
        params = {k: jnp.asarray(v, jnp.float64) for k, v in PARAMS.items()}
        # Compiled: op by op, each operation would compile on its own.
        value = jax.jit(log_likelihood)
        grad = jax.jit(jax.grad(log_likelihood))(params, stars)
        for name in (
            "log_D",
            "log_sigma",
            "pmra",
            "log_dispersion",
            "outlier_share",
            "log_outlier_widen",
            "log_r50",
        ):
            step = 1e-6
            up = dict(params, **{name: params[name] + step})
            down = dict(params, **{name: params[name] - step})
            numeric = (value(up, stars) - value(down, stars)) / (2 * step)
            assert float(grad[name]) == pytest.approx(
                float(numeric), rel=1e-4, abs=1e-6
            )


def test_unusable_rows_are_flagged_not_dropped_silently():
    rows = [list(r) for r in STARS]
    rows[1][2] = np.nan  # no pmra
    rows[2][4] = 0.0  # zero pmra error
    rows[3][9] = 0.6  # outside the footprint
    stars, flag = astrometric_stars(_table(rows), FOOTPRINT)
    assert list(flag) == [
        0,
        DistanceFlag.BAD_ERROR,
        DistanceFlag.BAD_ERROR,
        DistanceFlag.EXCLUDED,
        0,
        0,
        0,
    ]
    assert stars.plx.shape == (4,)
    table = _table()
    del table["pmra_pmdec_corr"]
    with pytest.raises(InputError, match="pmra_pmdec_corr"):
        astrometric_stars(table, FOOTPRINT)
    with pytest.raises(InputError, match="radius needs a unit"):
        Footprint.cone(CENTRE, 0.5)


def _plummer(x, y, a):
    return a * a / (np.pi * (a * a + x * x + y * y) ** 2)


@pytest.mark.parametrize("a", [0.01, 0.1, 0.6])
def test_plummer_share_in_a_box_is_the_double_integral(a):
    bounds = (-0.3, 0.2, -0.15, 0.35)  # relative to the profile's centre
    want, _ = integrate.dblquad(
        lambda y, x: _plummer(x, y, a),
        bounds[0],
        bounds[1],
        bounds[2],
        bounds[3],
        epsabs=1e-12,
        epsrel=1e-10,
    )
    with jax.enable_x64(True):
        got = float(_plummer_in_box(jnp.float64(a), jnp.asarray(bounds)))
    assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("a", [0.01, 0.1, 0.6])
@pytest.mark.parametrize("centre", [(0.0, 0.0), (0.12, -0.2)])
def test_plummer_share_in_a_cone_is_the_double_integral(a, centre):
    radius = 0.5
    cx, cy = centre
    # In polar coordinates about the cone's centre.
    want, _ = integrate.dblquad(
        lambda rho, phi: (
            rho * _plummer(rho * np.cos(phi) - cx, rho * np.sin(phi) - cy, a)
        ),
        0,
        2 * np.pi,
        0,
        radius,
        epsabs=1e-12,
        epsrel=1e-10,
    )
    with jax.enable_x64(True):
        got = float(_plummer_in_cone(jnp.float64(a * a), jnp.asarray(centre), radius))
    assert got == pytest.approx(want, rel=1e-7)


def test_footprint_of_a_cone_and_of_a_box():
    rng = np.random.default_rng(3)
    n = 4000
    sep = 0.4 * np.sqrt(rng.random(n))
    where = CENTRE.directional_offset_by(rng.uniform(0, 360, n) * u.deg, sep * u.deg)
    cone = footprint_of(QTable({"ra": where.ra, "dec": where.dec}))
    assert cone.shape == "cone"
    assert cone.radius == pytest.approx(0.4, rel=0.01)
    assert cone.centre.separation(CENTRE).deg < 0.01
    # A box in ra and dec, as an ADQL query with ra and dec bounds selects.
    half = 0.2
    ra = CENTRE.ra.deg + rng.uniform(-1, 1, n) * half / np.cos(CENTRE.dec.rad)
    dec = CENTRE.dec.deg + rng.uniform(-1, 1, n) * half
    box = footprint_of(QTable({"ra": ra * u.deg, "dec": dec * u.deg}))
    assert box.shape == "box"
    assert box.area == pytest.approx((2 * half) ** 2, rel=0.01)
    assert np.all(box.contains(box.offsets(ra, dec)))
    # A table from query_cone says what its cone was.
    table = QTable({"ra": ra * u.deg, "dec": dec * u.deg})
    table.meta.update(cone_ra=CENTRE.ra.deg, cone_dec=CENTRE.dec.deg, cone_rad=0.3)
    told = footprint_of(table)
    assert (told.shape, told.radius) == ("cone", 0.3)


def test_distance_series_matches_the_summed_integrals_and_continues():
    """The field stars' ``ln L`` series against the direct sum, and beyond its ends.

    2,000 simulated field stars (1 kpc EDSD scale, Gaia-like errors); the
    series over ln L = ln 1000 ± 0.1 against `distance_integrals` summed in
    float64 at points inside (values to 1e-3 nats, slopes to 1e-3
    relative), and outside: finite, continuous at the end, and pulling
    back towards the interval.
    """
    rng = np.random.default_rng(4)
    n = 2000
    r = rng.gamma(3.0, 1000.0, n)
    err = rng.uniform(0.02, 0.5, n)
    stars = AstrometricStars(
        plx=1000.0 / r + err * rng.normal(size=n),
        err=err,
        **{k: np.zeros(n) for k in ("pmra", "pmdec", "cov_ra", "cov_dec")},
        var_ra=np.ones(n),
        cov_radec=np.zeros(n),
        var_dec=np.ones(n),
        x=np.zeros(n),
        y=np.zeros(n),
        bounds=np.array([-1.0, 1.0, -1.0, 1.0]),
        radius=np.asarray(1.0),
        scale=np.asarray(1.0),
        weight=np.ones(n),
    )
    with jax.enable_x64(True):
        data = jax.tree.map(jnp.asarray, stars)

        # Compiled: op by op, each operation would compile on its own.
        integrals = jax.jit(distance_integrals)

        def direct(log_l):
            values = integrals(jnp.asarray(log_l, float), data)
            return np.sum(np.asarray(values), axis=1)

        mid, half = np.log(1000.0), 0.1
        series = distance_series(
            lambda v: integrals(jnp.asarray(v, float), data), mid, half
        )
        jseries = DistanceSeries(*(jnp.asarray(a) for a in series))
        value, slope = jax.jit(jseries.value), jax.jit(jax.grad(jseries.value))
        inside = mid + half * np.linspace(-1.0, 1.0, 9)
        got = np.array([float(value(v)) for v in inside])
        np.testing.assert_allclose(got, direct(inside), atol=1e-3, rtol=0)
        step = 1e-4
        slopes = (direct(inside + step) - direct(inside - step)) / (2 * step)
        grads = np.array([float(slope(v)) for v in inside])
        np.testing.assert_allclose(grads, slopes, rtol=1e-3, atol=1e-2)
        # Beyond the ends: continuous, and rising towards the interval.
        for end, sign in ((mid - half, -1.0), (mid + half, 1.0)):
            at = float(value(end))
            just = float(value(end + sign * 1e-6))
            far = float(value(end + sign * 1.0))
            assert abs(just - at) < 1e-2
            assert np.isfinite(far) and far < at
            assert sign * float(slope(end + sign * 1.0)) < 0
