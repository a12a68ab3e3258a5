"""Predictive draws and figures of a cluster fit and of star distances."""

import astropy.units as u
import matplotlib
import numpy as np
import pytest
from astropy.table import Table

from gaiadist import ClusterDistance, StarDistance, apply_zeropoint, plotting
from gaiadist.simulate import cluster_field

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def fitted():
    stars = cluster_field(1500, distance=250 * u.pc, size=3 * u.pc, seed=4)
    stars = apply_zeropoint(stars)
    stars["parallax_corrected"][:2] = np.nan  # two unusable rows
    with pytest.warns(Warning, match="not be used"):
        # The parallax-only model's figures (the astrometric model's: in
        # tests/test_cluster_astrometric.py).
        fit = ClusterDistance(model="parallax").fit(stars, seed=1)
    return stars, fit


def test_posterior_and_prior_predictive_tables(fitted):
    stars, fit = fitted
    post = fit.posterior_predictive(40, seed=2)
    assert len(post) == len(stars) and post["parallax_rep"].shape == (1500, 40)
    assert post["parallax_rep"].unit == u.mas
    np.testing.assert_array_equal(post["source_id"], stars["source_id"])
    assert np.all(np.isnan(post["parallax_rep"][:2]))
    # Replicated catalogues look like the observed one: quartiles of the
    # parallaxes agree to within a few hundredths of a mas.
    observed = post["parallax"][2:].to_value(u.mas)
    rep = post["parallax_rep"][2:].to_value(u.mas)
    for q in (25, 50, 75):
        spread = np.percentile(rep, q, axis=0)
        assert abs(np.percentile(observed, q) - np.median(spread)) < 0.05
    prior = fit.prior_predictive(40, seed=2)
    assert prior["parallax_rep"].shape == (1500, 40)
    # The prior allows far more varied catalogues than the posterior.
    prior_spread = np.std(np.nanmedian(prior["parallax_rep"].value, axis=0))
    post_spread = np.std(np.nanmedian(post["parallax_rep"].value, axis=0))
    assert prior_spread > 10 * post_spread


def test_figures(fitted, tmp_path):
    stars, fit = fitted
    figures = {
        "corner": plotting.corner_plot(fit, truth=stars.meta["truth"]),
        "cmd": plotting.cmd_plot(fit.table),
        "predictive": plotting.predictive_plot(fit, num_draws=20),
    }
    with pytest.warns(Warning, match="cannot be used"):
        distances = StarDistance(length_scale=400 * u.pc).fit(stars)
    figures["stars"] = plotting.star_distance_plot(distances)
    assert len(figures["corner"].axes) == 16
    assert len(figures["predictive"].axes) == 2
    for name, fig in figures.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(Exception, match="bp_rp"):
        plotting.cmd_plot(Table({"p_member": [0.5]}))


def test_figures_explain_themselves(fitted):
    stars, fit = fitted
    summary = {row["parameter"]: row for row in fit.summary()}
    corner = plotting.corner_plot(fit, truth=stars.meta["truth"])
    diagonal = [corner.axes[i * 5] for i in range(4)]
    for ax, name in zip(diagonal, ("D", "approx_size", "L", "Q"), strict=True):
        # The title is the summary's mean and sd, not a median and quantiles.
        mean, sd = ax.get_title().split("= ")[1].split()[0:3:2]
        assert float(mean) == pytest.approx(summary[name]["mean"], abs=float(sd))
        assert float(sd) == pytest.approx(summary[name]["sd"], rel=0.05)
        edges = sorted(
            line.get_xdata()[0] for line in ax.lines if line.get_ls() == "--"
        )
        assert edges == pytest.approx(
            [summary[name]["hdi_3%"], summary[name]["hdi_97%"]]
        )
    labels = [t.get_text() for legend in corner.legends for t in legend.get_texts()]
    assert labels == ["94 % HDI", "truth"]

    predictive = plotting.predictive_plot(fit, num_draws=20)
    post, prior = predictive.axes
    assert post.get_ylabel() and prior.get_ylabel()
    band = prior.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() >= 0.5 and prior.get_ylim()[0] == 0.5  # not filled to zero

    cmd = plotting.cmd_plot(fit.table)
    assert len(cmd.axes) == 3  # fitted members, true members, colour bar
    assert "true members" in cmd.axes[1].get_title()
    assert (
        len(
            plotting.cmd_plot(
                fit.table[[c for c in fit.table.colnames if c != "true_member"]]
            ).axes
        )
        == 2
    )


def test_star_distance_plot_keeps_negative_parallaxes(fitted):
    stars, _ = fitted
    with pytest.warns(Warning, match="cannot be used"):
        distances = StarDistance(length_scale=400 * u.pc).fit(stars)
    negative = np.count_nonzero(distances["parallax_corrected"] <= 0 * u.mas)
    assert negative > 10
    fig = plotting.star_distance_plot(distances)
    left, right = fig.axes
    assert f"({negative} more on the right)" in left.get_title()
    assert right.get_title() == f"all {len(stars) - 2} stars with a distance"


def test_corner_plot_leaves_out_unbounded_draws(fitted):
    # Draws where the shared parallax offset leaves D unbounded are NaN.
    import copy

    _, fit = fitted
    broken = copy.copy(fit)
    broken.samples = dict(fit.samples, D=fit.samples["D"].copy())
    broken.samples["D"][0, :10] = np.nan
    assert any("no upper bound in 0.5%" in p for p in broken.problems())
    fig = plotting.corner_plot(broken)
    assert len(fig.axes) == 16
