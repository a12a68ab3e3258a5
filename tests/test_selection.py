"""The parallax cut in the cluster likelihood: its integrals, and fits with it."""

import math

import astropy.units as u
import jax
import numpy as np
import pytest
from scipy import stats

from gaiadist import ClusterDistance, GaiadistWarning, apply_zeropoint
from gaiadist.likelihood import EDSDLogPrior, GaussianLogPrior
from gaiadist.selection import (
    _log_fraction_grid,
    log_selected_fraction,
    parallax_cut,
    selected_fraction_grid,
)
from gaiadist.simulate import cluster_field

PRIORS = {
    "M67-like cluster": (GaussianLogPrior, (math.log(830.0), 0.01)),
    "broad cluster": (GaussianLogPrior, (math.log(2400.0), 0.2)),
    "nearby field": (EDSDLogPrior, (math.log(370.0),)),
    "distant field": (EDSDLogPrior, (math.log(3000.0),)),
}
CUTS = [(0.2, 3.0), (-np.inf, 0.6), (1.19, 1.21), (0.5, np.inf)]


def _brute_force(prior, lo, hi, err, shift):
    """The kept fraction by the trapezoid rule on a fine grid of ln r."""
    u_ = np.linspace(float(prior.mode) - 16.0, float(prior.mode) + 6.0, 400_001)
    plx = 1000.0 * np.exp(-u_)
    kept = stats.norm.cdf((hi - shift - plx) / err) - stats.norm.cdf(
        (lo - shift - plx) / err
    )
    return np.trapezoid(np.exp(np.asarray(prior.logpdf(u_))) * kept, u_)


@pytest.mark.parametrize("name", PRIORS)
@pytest.mark.parametrize("bounds", CUTS)
def test_kept_fraction_matches_a_brute_force_integral(name, bounds):
    kind, args = PRIORS[name]
    with jax.enable_x64(True):
        prior = kind(*args)
        errs, shifts = np.array([0.01, 0.1, 0.7, 2.0]), np.array([0.0, 0.04])
        got = np.exp(
            np.asarray(selected_fraction_grid(prior, np.array(bounds), errs, shifts))
        )
        want = np.array(
            [[_brute_force(prior, *bounds, e, z) for e in errs] for z in shifts]
        )
    # Fractions down to 1e-5 (a narrow cut far from a component) to 1e-5
    # relative; below that the absolute error is what matters.
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-10)
    if kind is EDSDLogPrior:
        # The field's fixed nodes, at some of a cut's own grid points.
        with jax.enable_x64(True):
            cut = parallax_cut(*bounds, errs, np.resize(shifts, errs.shape))
            fast = np.exp(np.asarray(_log_fraction_grid(prior, cut)))
            n_err = cut.err_nodes.shape[0]
            picks = [
                (s, e) for s in (0, cut.shift_nodes.shape[0] - 1) for e in (0, 7, 15)
            ]
            fixed = [fast[s * n_err + e] for s, e in picks]
            exact = [
                _brute_force(prior, *bounds, cut.err_nodes[e], cut.shift_nodes[s])
                for s, e in picks
            ]
        np.testing.assert_allclose(fixed, exact, rtol=1e-5, atol=1e-10)


def test_kept_fraction_of_every_star_is_interpolated_closely():
    rng = np.random.default_rng(1)
    err = np.exp(rng.uniform(math.log(0.02), math.log(1.5), 300))
    shift = rng.uniform(-0.05, 0.0, 300)
    cut = parallax_cut(0.2, 3.0, err, shift)
    with jax.enable_x64(True):
        for kind, args in PRIORS.values():
            prior = kind(*args)
            got = np.asarray(log_selected_fraction(prior, cut))
            want = np.asarray(
                jax.vmap(
                    lambda e, z, p=prior: selected_fraction_grid(
                        p, np.array([0.2, 3.0]), e[None], z[None]
                    )[0, 0]
                )(err, shift)
            )
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)


def _summary(fit):
    return {row["parameter"]: row for row in fit.summary()}


@pytest.mark.filterwarnings("ignore::gaiadist.GaiadistWarning")
@pytest.mark.slow
def test_a_cut_field_gives_the_uncut_populations():
    """An M67-like field of 2,000 stars, whole and cut to 0.2-3 mas.

    The field without the cut is the truth's reference; treated as the whole
    field, the cut sample moves Q and L far off, and with the cut in the
    likelihood they agree with the whole field's within their errors.

    Slow (120-230 s on 2 cores: three fits, each compiling programs of its
    own; ``pytest -m slow``), out of CI's 20 minutes. The cut's terms are
    checked against brute-force integrals above, and the cut fits run in
    tests/test_cluster.py and tests/test_cli_cluster.py.
    """
    stars = apply_zeropoint(
        cluster_field(
            2000,
            distance=840 * u.pc,
            size=10 * u.pc,
            fraction=0.4,
            length_scale=800 * u.pc,
            seed=4,
        )
    )
    model = ClusterDistance(model="parallax", parallax_systematic=None)
    kwargs = {"seed": 1, "num_warmup": 100, "num_samples": 250}
    whole_fit = model.fit(stars, **kwargs)
    whole = _summary(whole_fit)
    cut_fit = model.fit(stars, parallax_range=(0.2, 3.0), **kwargs)
    cut = _summary(cut_fit)
    naive_fit = ClusterDistance(
        model="parallax", parallax_systematic=None, selection=False
    ).fit(stars, parallax_range=(0.2, 3.0), **kwargs)
    naive = _summary(naive_fit)
    inside = (stars["parallax"] > 0.2 * u.mas) & (stars["parallax"] < 3 * u.mas)
    assert np.count_nonzero(~inside) > 300  # the cut removes many field stars
    for name in ("Q", "L", "D"):
        sd = math.hypot(whole[name]["sd"], cut[name]["sd"])
        assert abs(cut[name]["mean"] - whole[name]["mean"]) < 2 * sd, name
    # Without the cut in the likelihood, Q and L are far off.
    for name in ("Q", "L"):
        sd = math.hypot(whole[name]["sd"], naive[name]["sd"])
        assert abs(naive[name]["mean"] - whole[name]["mean"]) > 4 * sd, name
    # The members inside the cut: the same count from both fits.
    p_whole = np.asarray(whole_fit.table["p_member"])[inside]
    p_cut = np.asarray(cut_fit.table["p_member"])[inside]
    p_naive = np.asarray(naive_fit.table["p_member"])[inside]
    truth = np.count_nonzero(np.asarray(stars["true_member"])[inside])
    assert abs(np.sum(p_cut) - np.sum(p_whole)) < 2 * math.sqrt(truth)
    assert abs(np.sum(p_cut) - truth) < 2 * math.sqrt(truth)
    assert abs(np.sum(p_naive) - truth) > 4 * math.sqrt(truth)
    record = cut_fit.table.meta["gaiadist"]["cluster_distance"]
    assert record["selection"] == "parallax_range in the likelihood"


@pytest.fixture(scope="module")
def m67_zpt():
    from tests.conftest import M67_PATH

    if not M67_PATH.exists():
        pytest.skip(f"real data not found at {M67_PATH}")
    from astropy.table import Table

    with pytest.warns(Warning, match="calibration"):
        return apply_zeropoint(Table.read(M67_PATH))


def test_m67_field_below_its_cluster_has_no_cluster(m67_zpt):
    """Issue 20's example: the M67 file's stars with parallax < 0.6 mas.

    Without the cut in the likelihood the model found D = 2402 pc and 1,174
    members; with it the best "cluster" is a broad population of the field
    (the width of its ln r about 0.34), and the fit says there is none.
    (M67 itself gives 1,102 nats: tests/test_cluster.py checks its
    statistic.)
    """
    model = ClusterDistance(model="parallax")
    with pytest.warns(GaiadistWarning, match="no cluster: the component"):
        fit = model.fit(m67_zpt, parallax_range=(-np.inf, 0.6), seed=1)
    assert not fit.detected
    record = fit.table.meta["gaiadist"]["cluster_distance"]
    assert record["mode_relative_size"] > 0.25
    assert record["detected"] is False and record["detection_nats"] == fit.detection
    assert fit.problems()[0].startswith("no cluster: the component")
    summary = fit.summary()
    assert np.all(np.isnan(summary["mean"])) and np.all(summary["ess_bulk"] == -1)
    used = fit.table["r_flag"] == 0
    assert np.count_nonzero(used) == 1801
    assert np.all(fit.table["p_member"][used] == 0)
    assert np.all(np.isfinite(fit.table["r_med"][used]))


def test_astrometric_likelihood_divides_by_the_kept_mixture():
    """The astrometric model's cut term against brute-force integrals.

    Seven kinds of star (tests/test_astrometric.py) cut to 0.2-3 mas: the log
    likelihood with the cut less the one without is ``-sum ln(Q P_c + (1 -
    Q) P_f)``, each ``P`` the trapezoid rule in ln r with scipy's normal
    CDF; the field alone's, ``-sum ln P_f``. The term is the same whether
    the stars come in one group or two (the sampler's shortcut for field
    stars), and padding adds nothing.
    """
    from gaiadist.astrometric import (
        astrometric_stars,
        log_likelihood,
        pad_stars,
        selection_log_likelihood,
        take_stars,
    )
    from tests.test_astrometric import FOOTPRINT, PARAMS, _table

    stars, flag = astrometric_stars(_table(), FOOTPRINT)
    assert np.all(flag == 0)
    shift = np.linspace(-0.04, 0.0, stars.err.shape[0])
    cut = stars._replace(cut=parallax_cut(0.2, 3.0, stars.err, shift))
    params = dict(PARAMS)
    with jax.enable_x64(True):
        cluster = GaussianLogPrior(params["log_D"], np.exp(params["log_sigma"]))
        field = EDSDLogPrior(params["log_L"])
        p_c, p_f = (
            np.array(
                [
                    _brute_force(prior, 0.2, 3.0, e, z)
                    for e, z in zip(stars.err, shift, strict=True)
                ]
            )
            for prior in (cluster, field)
        )
        q = params["Q"]
        want = -np.sum(np.log(q * p_c + (1 - q) * p_f))
        value = jax.jit(log_likelihood)
        got = float(value(params, cut)) - float(value(params, stars))
        assert got == pytest.approx(want, abs=6e-3)
        alone = float(selection_log_likelihood({"log_L": params["log_L"]}, cut))
        assert alone == pytest.approx(-np.sum(np.log(p_f)), abs=6e-3)
        halves = float(
            selection_log_likelihood(
                params, take_stars(cut, [0, 2, 4, 6]), take_stars(cut, [5, 3, 1])
            )
        )
        assert halves == pytest.approx(got, abs=1e-9)
        padded = pad_stars(cut, 512, np.float64)
        assert float(selection_log_likelihood(params, padded)) == pytest.approx(
            got, abs=1e-9
        )


@pytest.mark.parametrize("log_sigma", [-10.0, -14.0, -21.0, -28.0])
def test_a_cluster_narrower_than_the_float_resolution_keeps_its_fraction(log_sigma):
    """In float32 a cluster of width 5e-5 to 1e-12 in ln r is its value at D.

    The kept fraction is then the cut's at the parallax 1000 / D, in closed
    form; were the integral's interval to round to nothing, the fraction
    would fall to the floor and reward an ever narrower cluster.
    """
    d, err, shift = 840.0, np.array([0.02, 0.3]), np.array([-0.03])
    prior = GaussianLogPrior(np.float32(math.log(d)), np.float32(math.exp(log_sigma)))
    got = np.asarray(selected_fraction_grid(prior, np.array([1.15, 3.0]), err, shift))
    plx = 1000.0 / d
    want = stats.norm.cdf((3.0 - shift - plx) / err) - stats.norm.cdf(
        (1.15 - shift - plx) / err
    )
    np.testing.assert_allclose(np.exp(got[0]), want, rtol=1e-4)

    def value(s):
        grid = selected_fraction_grid(
            GaussianLogPrior(np.float32(math.log(d)), jax.numpy.exp(s)),
            np.array([1.15, 3.0]),
            err,
            shift,
        )
        return grid.sum()

    assert np.isfinite(float(jax.grad(value)(np.float32(log_sigma))))
