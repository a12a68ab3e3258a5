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
        fit = ClusterDistance().fit(stars, seed=1)
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
