"""Figures for cluster fits and star distances (matplotlib and corner).

Every function returns a `matplotlib.figure.Figure` and leaves showing or
saving it to the caller (``fig.savefig("corner.png")``).
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.table import Table

from .columns import column_values
from .exceptions import InputError

__all__ = ["cmd_plot", "corner_plot", "predictive_plot", "star_distance_plot"]

_CORNER = ("D", "approx_size", "L", "Q")
_LABELS = {
    "D": "D [pc]",
    "approx_size": "approx. size [pc]",
    "L": "L [pc]",
    "Q": "Q",
}


def corner_plot(fit, *, truth: dict | None = None):
    """Corner plot of the posterior of D, approx_size, L and Q.

    Parameters
    ----------
    fit : `~gaiadist.ClusterFit`
        A cluster fit.
    truth : dict, optional
        Values to mark, keyed by parameter name (e.g. a simulation's
        ``meta["truth"]``).
    """
    import corner

    samples = np.column_stack([fit.samples[k].reshape(-1) for k in _CORNER])
    truths = None if truth is None else [truth.get(k) for k in _CORNER]
    return corner.corner(
        samples,
        labels=[_LABELS[k] for k in _CORNER],
        truths=truths,
        quantiles=[0.16, 0.5, 0.84],
        show_titles=True,
        title_fmt=".3g",
    )


def cmd_plot(table: Table):
    """Colour-magnitude diagram coloured by membership probability.

    Absolute G comes from each star's ``r_med``:
    ``M_G = G - 5 log10(r_med / 10 pc)`` (no extinction).

    Parameters
    ----------
    table : `~astropy.table.Table`
        ``ClusterFit.table``, with ``bp_rp``, ``phot_g_mean_mag``, ``r_med``
        and ``p_member``.
    """
    import matplotlib.pyplot as plt

    colour = column_values(table, "bp_rp", u.mag)
    g = column_values(table, "phot_g_mean_mag", u.mag)
    r = column_values(table, "r_med", u.pc)
    p = column_values(table, "p_member", "")
    ok = np.isfinite(colour) & np.isfinite(g) & np.isfinite(r) & np.isfinite(p)
    if not np.any(ok):
        raise InputError("no row has finite bp_rp, phot_g_mean_mag, r_med, p_member")
    order = np.argsort(p[ok])  # members on top
    fig, ax = plt.subplots(figsize=(5.5, 6.5), layout="constrained")
    points = ax.scatter(
        colour[ok][order],
        (g - 5.0 * np.log10(r / 10.0))[ok][order],
        c=p[ok][order],
        s=4,
        cmap="viridis",
        vmin=0,
        vmax=1,
    )
    ax.invert_yaxis()
    ax.set_xlabel("BP - RP [mag]")
    ax.set_ylabel("absolute G [mag] (from r_med)")
    fig.colorbar(points, ax=ax, label="membership probability")
    return fig


def predictive_plot(fit, *, num_draws: int = 50, seed: int = 0):
    """Observed parallaxes against prior and posterior predictive ones.

    Histograms of the parallaxes the fit used, and the 5-95 % band over
    ``num_draws`` simulated catalogues from the posterior (and, in a second
    panel, from the prior).
    """
    import matplotlib.pyplot as plt

    post = fit.posterior_predictive(num_draws, seed=seed)
    prior = fit.prior_predictive(num_draws, seed=seed)
    observed = post["parallax"].to_value(u.mas)
    used = np.isfinite(observed)
    lo, hi = np.percentile(observed[used], [0.5, 99.5])
    bins = np.linspace(lo, hi, 60)
    centres = 0.5 * (bins[1:] + bins[:-1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained", sharex=True)
    for ax, table, label in ((axes[0], post, "posterior"), (axes[1], prior, "prior")):
        reps = table["parallax_rep"].to_value(u.mas)[used]
        counts = np.stack([np.histogram(rep, bins)[0] for rep in reps.T])
        band = np.percentile(counts, [5, 50, 95], axis=0)
        ax.fill_between(
            centres, band[0], band[2], step="mid", alpha=0.4, label=f"{label} 5-95 %"
        )
        ax.step(centres, band[1], where="mid", lw=1, label=f"{label} median")
        ax.hist(
            observed[used], bins, histtype="step", color="k", lw=1.5, label="observed"
        )
        ax.set_xlabel("parallax [mas]")
        ax.set_title(f"{label} predictive check")
        ax.legend(fontsize="small")
    axes[0].set_ylabel("stars per bin")
    axes[1].set_yscale("log")
    return fig


def star_distance_plot(table: Table):
    """Posterior distance against inverse parallax, with the 68 % intervals.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The output of `~gaiadist.StarDistance.fit`.
    """
    import matplotlib.pyplot as plt

    name = (
        "parallax_corrected" if "parallax_corrected" in table.colnames else "parallax"
    )
    plx = column_values(table, name, u.mas)
    r_med, r_lo, r_hi = (
        column_values(table, k, u.pc) for k in ("r_med", "r_lo", "r_hi")
    )
    ok = np.isfinite(r_med) & (plx > 0)
    if not np.any(ok):
        raise InputError("no row has a positive parallax and a finite r_med")
    fig, ax = plt.subplots(figsize=(6, 5.5), layout="constrained")
    ax.errorbar(
        1000.0 / plx[ok],
        r_med[ok],
        yerr=[r_med[ok] - r_lo[ok], r_hi[ok] - r_med[ok]],
        fmt=".",
        ms=2,
        lw=0.3,
        alpha=0.5,
    )
    top = np.nanpercentile(r_hi[ok], 99)
    ax.plot([0, top], [0, top], "k--", lw=1, label="r = 1 / parallax")
    # Parallaxes near zero would stretch the axis to 1e6 pc and beyond.
    ax.set_xlim(0.8 * np.min(1000.0 / plx[ok]), 10.0 * top)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"1 / {name} [pc]")
    ax.set_ylabel("posterior distance r_med (r_lo to r_hi) [pc]")
    ax.legend()
    return fig
