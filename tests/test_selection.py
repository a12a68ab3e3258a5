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
def test_a_cut_field_gives_the_uncut_populations():
    """An M67-like field of 2,000 stars, whole and cut to 0.2-3 mas.

    The field without the cut is the truth's reference; treated as the whole
    field, the cut sample moves Q and L far off, and with the cut in the
    likelihood they agree with the whole field's within their errors.
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
