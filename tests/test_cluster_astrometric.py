"""ClusterDistance's astrometric model on simulated fields with known truth."""

import warnings

import astropy.units as u
import jax
import numpy as np
import pytest
from astropy.table import QTable, Table, vstack
from scipy import optimize, stats

from gaiadist import (
    ClusterDistance,
    DistanceFlag,
    InputError,
    StarDistance,
    apply_zeropoint,
)
from gaiadist.astrometric import (
    astrometric_stars,
    distance_integrals,
    distance_series,
    footprint_of,
    log_likelihood,
    membership,
)
from gaiadist.astrometric_model import field_only_log_likelihood
from gaiadist.cluster import DETECTION_THRESHOLD, MIN_MEMBERS
from gaiadist.simulate import cluster_field, true_parameters


def _auc(score, truth):
    """Area under the ROC curve: P(score of a member > score of a non-member)."""
    truth = np.asarray(truth, bool)
    ranks = stats.rankdata(np.asarray(score, float))  # ties: their mean rank
    n1 = truth.sum()
    return (ranks[truth].sum() - n1 * (n1 + 1) / 2) / (n1 * (~truth).sum())


@pytest.fixture(scope="module")
def simulated():
    # The cluster's proper motion a field width from the field's main
    # Gaussian, a sixth of the stars in the cluster, a fifth of those
    # outliers.
    stars = cluster_field(
        2000,
        distance=1500 * u.pc,
        size=3 * u.pc,
        fraction=0.15,
        length_scale=600 * u.pc,
        r50=3 * u.pc,
        proper_motion=(-4.0, -1.0) * u.mas / u.yr,
        velocity_dispersion=1.0 * u.km / u.s,
        outlier_share=0.2,
        outlier_widen=4.0,
        seed=2,
    )
    stars = apply_zeropoint(stars)
    # Two field stars whose proper motions cannot be used: flagged, not
    # dropped (test_rows_without_proper_motions_are_flagged_not_dropped).
    field = np.flatnonzero(~np.asarray(stars["true_member"]))[:2]
    stars["pmra"][field[0]] = np.nan * u.mas / u.yr
    stars["pmdec_error"][field[1]] = 0.0 * u.mas / u.yr
    stars.meta["unusable"] = field
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = ClusterDistance().fit(stars, seed=1, num_samples=600)
    return stars, fit, caught


def test_recovers_the_simulated_cluster(simulated):
    stars, fit, caught = simulated
    assert fit.model == "astrometric"
    # The fit warns at a single divergent transition; allow 1 in 1000.
    assert np.count_nonzero(fit.diverging) <= fit.diverging.size // 1000
    assert not [p for p in fit.problems() if "divergent" not in p]
    truth = stars.meta["truth"]
    summary = {row["parameter"]: row for row in fit.summary()}
    want = {
        "D": truth["D"],
        "r50": truth["r50"],
        "pmra": truth["pmra"],
        "pmdec": truth["pmdec"],
        "dispersion": truth["velocity_dispersion"],
        "Q": truth["Q"],
        "L": truth["L"],
        "outlier_share": truth["outlier_share"],
        "outlier_dispersion": truth["velocity_dispersion"] * truth["outlier_widen"],
    }
    for name, value in want.items():
        row = summary[name]
        assert abs(row["mean"] - value) < 3 * row["sd"], (name, row["mean"], value)
    assert summary["r50"]["unit"] == "pc"
    assert summary["pmra"]["unit"] == "mas / yr"
    assert summary["dispersion"]["unit"] == "km / s"
    # The members and the cluster's stars: as many as the truth, within the
    # binomial noise.
    p = np.asarray(fit.table["p_member"])
    cluster = p + np.asarray(fit.table["p_outlier"])
    noise = 3 * np.sqrt(len(p) * 0.15 * 0.85)
    assert abs(np.nansum(cluster) - truth["n_members"]) < noise
    assert abs(np.nansum(p) - truth["n_members"] + truth["n_outliers"]) < noise
    # About 300 members: far above the detection threshold.
    assert fit.detected and fit.detection > 10 * DETECTION_THRESHOLD
    assert fit.summary().meta["detection"] == fit.detection


def test_the_field_alone_is_the_mixture_without_its_cluster(simulated):
    """The detection test's field model: the mixture's likelihood with Q -> 0."""
    stars, _, _ = simulated
    data, flag = astrometric_stars(stars, footprint_of(stars))
    params = true_parameters(stars.meta["truth"])
    # Compiled: op by op, each operation would compile on its own.
    integrals = jax.jit(distance_integrals)
    field_alone, mixture_of = (
        jax.jit(f) for f in (field_only_log_likelihood, log_likelihood)
    )
    with jax.enable_x64(True):
        series = distance_series(
            lambda log_l: integrals(log_l, data), params["log_L"], 1.0
        )
        for shift in (-0.5, 0.0, 0.3):  # L away from the series' centre too
            moved = dict(params, log_L=params["log_L"] + shift)
            alone = float(field_alone(moved, data, series))
            mixture = float(mixture_of(dict(moved, Q=1e-300), data))
            assert alone == pytest.approx(mixture, abs=1e-6 * abs(mixture))


def test_membership_is_as_good_as_the_truths(simulated):
    """The fit's p_member and p_outlier rank stars as well as the true parameters do.

    Members against the rest by ``p_member``, the cluster's stars against
    the field by ``p_member + p_outlier``.
    """
    stars, fit, _ = simulated
    table = fit.table
    used = np.asarray(table["r_flag"]) == 0
    data, _ = astrometric_stars(table[used], footprint_of(table))
    with jax.enable_x64(True):
        best = membership(true_parameters(stars.meta["truth"]), data)
    best = [np.asarray(b) for b in best]
    cluster = np.asarray(stars["true_member"])[used]
    member = cluster & ~np.asarray(stars["true_outlier"])[used]
    p, outlier = (np.asarray(table[c])[used] for c in ("p_member", "p_outlier"))
    for score, want, truth in ((p, best[0], member), (p + outlier, sum(best), cluster)):
        auc_fit, auc_truth = _auc(score, truth), _auc(want, truth)
        assert auc_truth > 0.97  # the simulation is not trivial, nor hopeless
        assert auc_fit > auc_truth - 0.005, (auc_fit, auc_truth)


def test_distances_and_records(simulated):
    stars, fit, _ = simulated
    out = fit.table
    assert out.colnames[: len(stars.colnames)] == stars.colnames
    assert out["source_id"].dtype == np.int64
    np.testing.assert_array_equal(out["source_id"], stars["source_id"])
    for name in ("r_lo", "r_med", "r_hi"):
        assert out[name].unit == u.pc
    ok = np.asarray(out["r_flag"]) == 0
    assert np.all(out["r_lo"][ok] < out["r_med"][ok])
    assert np.all(out["r_med"][ok] < out["r_hi"][ok])
    # Members' distances pulled onto the cluster's: half of their 68 %
    # intervals cover D, about as many as the depth and errors allow.
    member = (np.asarray(out["p_member"]) > 0.9) & ok
    d = stars.meta["truth"]["D"]
    covers = (out["r_lo"][member].value < d) & (out["r_hi"][member].value > d)
    assert covers.mean() > 0.5
    meta = out.meta["gaiadist"]["cluster_distance"]
    assert meta["model"] == "astrometric"
    assert meta["footprint"]["shape"] == "cone"
    assert meta["footprint"]["radius_deg"] == pytest.approx(0.5, rel=0.01)
    assert len(meta["modes"]) == 5 and "pmra" in meta["modes"][0]


def test_rows_without_proper_motions_are_flagged_not_dropped(simulated):
    stars, fit, caught = simulated
    bad = stars.meta["unusable"]
    assert any("2 of 2000 rows cannot be used" in str(w.message) for w in caught)
    flag = np.asarray(fit.table["r_flag"])
    assert flag[bad[0]] == flag[bad[1]] == DistanceFlag.BAD_ERROR
    assert np.all(np.isnan(fit.table["p_member"][bad]))
    assert np.count_nonzero(flag == 0) == len(stars) - 2


def test_a_field_without_a_cluster_says_so():
    """No cluster among 400 field stars: no draws, NaN summary, field distances."""
    stars = apply_zeropoint(cluster_field(400, fraction=0.0, seed=5))
    with pytest.warns(Warning, match="no cluster: the stars are as well") as caught:
        fit = ClusterDistance().fit(stars, num_warmup=100, num_samples=100)
    assert not [w for w in caught if "may not have converged" in str(w.message)]
    assert not fit.detected and fit.detection < DETECTION_THRESHOLD
    assert "no cluster" in repr(fit) and fit.problems()[0].startswith("no cluster")
    summary = fit.summary()
    assert np.all(np.isnan(summary["mean"])) and np.all(summary["ess_bulk"] == -1)
    assert summary.meta["detected"] is False and summary.meta["n_members"] == 0
    assert np.all(fit.samples["D"].shape == (2, 100)) and fit.diverging.sum() == 0
    out = fit.table
    assert np.all(np.asarray(out["p_member"]) == 0)
    # Each star's distance is the field's alone: its EDSD posterior with the
    # field's L.
    meta = out.meta["gaiadist"]["cluster_distance"]
    alone = StarDistance(length_scale=meta["field_alone_L_pc"] * u.pc).fit(stars)
    for name in ("r_lo", "r_med", "r_hi"):
        np.testing.assert_allclose(out[name], alone[name], rtol=1e-3)
    assert meta["detected"] is False
    assert meta["detection_threshold_nats"] == DETECTION_THRESHOLD
    from gaiadist import plotting

    with pytest.raises(InputError, match="members_plot: the fit found no cluster"):
        plotting.members_plot(fit)


def test_a_wide_binary_is_not_a_cluster():
    """Two stars 1" apart with one motion: a significant group, but no cluster.

    The Plummer profile shrunk onto the pair makes it 63 nats better than
    the field alone (the IC 4756 field without its cluster gave 42 nats
    from such a pair); the sum of the memberships, 2, says what it is.
    """
    stars = Table(cluster_field(400, fraction=0.0, seed=5))
    pair = stars[:2]
    pair["source_id"] = [1, 2]
    pair["ra"] = stars["ra"][10] + np.array([0.0, 3e-4])
    pair["dec"] = stars["dec"][10] + np.array([0.0, 1e-4])
    pair["pmra"], pair["pmdec"] = [16.31, 16.29], [-38.49, -38.51]
    pair["parallax"], pair["phot_g_mean_mag"] = [3.9, 3.92], [15.0, 15.4]
    for name in ("parallax_error", "pmra_error", "pmdec_error"):
        pair[name] = [0.02, 0.025]
    stars = apply_zeropoint(vstack([stars, pair]))
    # The guesses put a start at the pair, as a catalogue's entry would.
    model = ClusterDistance(
        proper_motion_guess=(16.3, -38.5) * u.mas / u.yr, distance_guess=256 * u.pc
    )
    with pytest.warns(Warning, match="no cluster: the group the fit found is too"):
        fit = model.fit(stars, num_warmup=100, num_samples=100)
    meta = fit.table.meta["gaiadist"]["cluster_distance"]
    assert fit.detection > 3 * DETECTION_THRESHOLD and meta["mode_r50_pc"] < 0.01
    assert meta["mode_members"] == pytest.approx(2.0, abs=0.01)
    assert not fit.detected and meta["min_members"] == MIN_MEMBERS
    assert np.all(np.asarray(fit.table["p_member"]) == 0)
    with pytest.raises(InputError, match="min_members must be a number"):
        ClusterDistance(min_members="few")


@pytest.mark.filterwarnings("ignore:the table has no 'parallax_corrected'")
def test_model_choice_and_bad_input_are_clear():
    stars = QTable(
        {
            "parallax": np.full(20, 1.0) * u.mas,
            "parallax_error": np.full(20, 0.1) * u.mas,
        }
    )
    with pytest.raises(InputError, match="needs the columns ra, dec, pmra"):
        ClusterDistance(model="astrometric").fit(stars)
    with pytest.raises(InputError, match="model must be one of"):
        ClusterDistance(model="kinematic")
    with pytest.raises(InputError, match="latent method runs the parallax-only"):
        ClusterDistance("latent", model="astrometric")
    with pytest.raises(InputError, match="proper_motion_guess"):
        ClusterDistance(proper_motion_guess=[1.0, 2.0, 3.0] * u.mas / u.yr)
    with pytest.raises(InputError, match="unknown prior 'r_50'"):
        ClusterDistance(priors={"r_50": None})
    with pytest.raises(InputError, match="detection_threshold must be a number"):
        ClusterDistance(detection_threshold="high")
    with pytest.raises(InputError, match=r"max_dispersion must be positive \(km/s\)"):
        ClusterDistance(max_dispersion=0 * u.km / u.s)
    with pytest.raises(InputError, match="parallax_error_scale must be a positive"):
        ClusterDistance(parallax_error_scale=-1)
    with pytest.raises(InputError, match="max_relative_size must be a positive"):
        ClusterDistance(max_relative_size=0)


@pytest.mark.slow
def test_a_nearby_cluster_in_a_large_field_is_found_from_the_default_start():
    """A Pleiades-like cluster, 5 % of 6,000 stars in a 1.5 deg cone, no hints.

    Slow (100-170 s on 2 cores, the largest field of the tests, whose size
    alone takes the sampler's shortcut for certain field stars): run with
    ``pytest -m slow``.
    """
    stars = cluster_field(
        6000,
        distance=135 * u.pc,
        size=1 * u.pc,
        fraction=0.05,
        length_scale=800 * u.pc,
        r50=2.5 * u.pc,
        proper_motion=(20.0, -45.0) * u.mas / u.yr,
        radius=1.5 * u.deg,
        seed=3,
    )
    fit = ClusterDistance().fit(apply_zeropoint(stars), seed=0, num_samples=800)
    summary = {row["parameter"]: row for row in fit.summary()}
    assert abs(summary["D"]["mean"] - 135) < 3 * summary["D"]["sd"] + 0.5
    # r50 as the true members' positions alone say (a draw of a few hundred
    # members strays from its truth of 2.5 pc), by a profile fit of theirs.
    footprint = footprint_of(stars)
    xy = footprint.offsets(stars["ra"].value, stars["dec"].value)
    xy = xy[np.asarray(stars["true_member"])]
    edge2 = footprint.radius**2

    def members_only(log_a):
        a2 = np.exp(2 * log_a)
        d2 = np.sum(xy**2, axis=1)
        inside = edge2 / (edge2 + a2)
        return -np.sum(np.log(a2 / np.pi) - 2 * np.log(a2 + d2) - np.log(inside))

    best = optimize.minimize_scalar(members_only, bounds=(-4, 2), method="bounded")
    r50 = np.radians(np.exp(best.x)) * 135
    assert abs(summary["r50"]["mean"] - r50) < summary["r50"]["sd"]
    assert abs(summary["r50"]["mean"] - 2.5) < 4 * summary["r50"]["sd"]
    members = np.asarray(fit.table["p_member"]) > 0.5
    truth = np.asarray(stars["true_member"])
    assert np.count_nonzero(members & truth) > 0.95 * truth.sum()
    assert np.count_nonzero(members & ~truth) < 0.02 * truth.sum()
    # Every start is recorded; those that ended on the field (the densest
    # clump of all proper motions is the field's) hold no share of the mass.
    assert len(fit.modes) == 5 and not fit._rival_modes()
    # The start that ended on the field (D near 2 kpc) searched with every
    # star; the others, and NUTS, took most of the field for certain field
    # stars, and at every draw used for the results none of them came near
    # membership.
    meta = fit.table.meta["gaiadist"]["cluster_distance"]
    assert max(m["D"] for m in fit.modes) > 1000
    assert meta["field_only_stars"] > 0.5 * len(stars)
    assert meta["field_only_p_member_max"] < 1e-6


def test_figures_of_the_astrometric_fit(simulated, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from gaiadist import plotting

    stars, fit, _ = simulated
    corner = plotting.corner_plot(fit, truth=dict(stars.meta["truth"], dispersion=1.0))
    assert len(corner.axes) == 36  # D, r50, pmra, pmdec, dispersion, Q
    members = plotting.members_plot(fit)
    assert "r50" in members.axes[1].get_title()
    for name, fig in (("corner", corner), ("members", members)):
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_field_stars_distances_without_the_cluster_match_the_full_mixture():
    """The sampler's shortcut for certain field stars' distance percentiles.

    `_distances` gives stars whose membership is negligible at every draw
    the field's posterior from 10 draws without the cluster's nodes; on
    4,000 simulated stars, with 50 draws near a narrow cluster at 1.5 kpc
    (unresolved depth, the costly case), their percentiles agree with
    `star_results` on the full mixture of all 50 draws to 1e-3 relative.
    """
    from gaiadist.astrometric_fit import _distances
    from gaiadist.marginal import star_results

    table = apply_zeropoint(
        cluster_field(4000, distance=1500 * u.pc, fraction=0.1, seed=5)
    )
    stars, _ = astrometric_stars(table, footprint_of(table))
    rng = np.random.default_rng(0)
    k = 50
    theta = np.stack(
        [
            np.log(800.0) + 0.005 * rng.normal(size=k),
            np.log(1500.0) + 0.004 * rng.normal(size=k),
            np.log(rng.uniform(0.1, 5.0, k) / 1500.0),
            0.1 + 0.005 * rng.normal(size=k),
        ],
        axis=1,
    ).astype(np.float32)
    n = stars.plx.shape[0]
    field = np.arange(n) % 4 != 0
    odds = np.where(field, -60.0, 2.0) + rng.normal(size=(k, n))
    odds = odds.astype(np.float32)
    quantiles, _ = _distances(stars, theta, odds, field)
    _, full, _ = star_results(
        np.asarray(stars.plx, np.float32),
        np.asarray(stars.err, np.float32),
        theta,
        odds,
    )
    np.testing.assert_allclose(quantiles[field], full[field], rtol=1e-3)
    # The other stars' are those of the full mixture as before.
    mixed = _distances(stars, theta, odds, np.zeros(n, bool))[0]
    np.testing.assert_allclose(quantiles[~field], mixed[~field], rtol=1e-6)
