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

__all__ = [
    "cmd_plot",
    "corner_plot",
    "members_plot",
    "predictive_plot",
    "star_distance_plot",
    "survey_plot",
]

_CORNER = ("D", "approx_size", "L", "Q")
_ASTROMETRIC_CORNER = ("D", "r50", "pmra", "pmdec", "dispersion", "Q")
_ASTROMETRIC_SUMMARY = ("D_stat", "r50", "pmra", "pmdec", "dispersion_pm", "ra", "dec")
_TRUTH_COLOUR = "tab:red"
_LABELS = {
    "D": "D [pc]",
    "approx_size": "approx. size [pc]",
    "L": "L [pc]",
    "Q": "Q",
    "r50": "r50 [pc]",
    "pmra": "pmra [mas/yr]",
    "pmdec": "pmdec [mas/yr]",
    "dispersion": "dispersion [km/s]",
}


def corner_plot(fit, *, truth: dict | None = None):
    """Corner plot of the posterior of the cluster's main parameters.

    D, approx_size, L and Q for the parallax-only model; D, r50, the proper
    motion centre, the velocity dispersion and Q for the astrometric one.

    Each panel of the diagonal is titled with the posterior mean and
    standard deviation, and marks the 94 % highest-density interval, as
    `~gaiadist.ClusterFit.summary` gives them.

    Parameters
    ----------
    fit : `~gaiadist.ClusterFit`
        A cluster fit.
    truth : dict, optional
        Values to mark, keyed by parameter name (e.g. a simulation's
        ``meta["truth"]``).
    """
    import corner
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    _needs_a_cluster(fit, "corner_plot")
    names = _ASTROMETRIC_CORNER if fit.model == "astrometric" else _CORNER
    summary = {row["parameter"]: row for row in fit.summary()}
    samples = np.column_stack([fit.samples[k].reshape(-1) for k in names])
    # D is NaN in the draws where the shared parallax offset leaves it
    # unbounded (ClusterFit.problems says so): those draws are not drawn.
    samples = samples[np.all(np.isfinite(samples), axis=1)]
    truths = None if truth is None else [truth.get(k) for k in names]
    fig = plt.figure(figsize=(8, 8) if len(names) == 4 else (10, 10))
    corner.corner(
        samples,
        fig=fig,
        labels=[_LABELS[k] for k in names],
        truths=truths,
        truth_color=_TRUTH_COLOUR,
        label_kwargs={"fontsize": 10},
    )
    axes = np.asarray(fig.axes).reshape(len(names), len(names))
    for i, name in enumerate(names):
        row = summary[name]
        ax = axes[i, i]
        for edge in (row["hdi_3%"], row["hdi_97%"]):
            ax.axvline(edge, color="k", ls="--", lw=0.8)
        unit = f" {row['unit']}" if row["unit"] else ""
        ax.set_title(f"{name} = {_mean_sd(row['mean'], row['sd'])}{unit}", fontsize=9)
    handles = [
        Line2D([], [], color="k", ls="--", lw=0.8, label="94 % HDI"),
    ]
    if truth is not None:
        handles.append(Line2D([], [], color=_TRUTH_COLOUR, label="truth"))
    fig.legend(
        handles=handles,
        loc="upper right",
        frameon=False,
        title="titles: posterior mean ± sd",
    )
    return fig


def members_plot(fit):
    """The astrometric fit's members in proper motion and on the sky.

    Stars with ``p_member >= 0.5`` are coloured by their membership
    probability over the others in grey, the cluster's outliers
    (``p_outlier >= 0.5``) in orange. The proper motion panel marks the
    fitted centre with a circle of twice the dispersion (mas/yr at D) and
    zooms on the cluster; the sky panel marks the fitted centre and r50.

    Parameters
    ----------
    fit : `~gaiadist.ClusterFit`
        A fit of the astrometric model.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    if fit.model != "astrometric":
        raise InputError("members_plot needs a fit of the astrometric model")
    _needs_a_cluster(fit, "members_plot")
    table = fit.table
    p = column_values(table, "p_member", "")
    outlier = column_values(table, "p_outlier", "") >= 0.5
    ok = np.isfinite(p)
    pmra, pmdec = (column_values(table, c, u.mas / u.yr) for c in ("pmra", "pmdec"))
    ra, dec = (column_values(table, c, u.deg) for c in ("ra", "dec"))
    mean = {k: float(np.mean(fit.samples[k])) for k in _ASTROMETRIC_SUMMARY}
    # Sky offsets from the fitted centre, arcmin.
    x = (ra - mean["ra"] + 180.0) % 360.0 - 180.0
    x *= np.cos(np.radians(mean["dec"])) * 60.0
    y = (dec - mean["dec"]) * 60.0
    r50 = np.degrees(mean["r50"] / mean["D_stat"]) * 60.0
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), layout="constrained")
    field, member = ok & (p < 0.5) & ~outlier, ok & (p >= 0.5)
    order = np.flatnonzero(member)[np.argsort(p[member])]
    for ax, (u_, v_) in zip(axes, ((pmra, pmdec), (x, y)), strict=True):
        ax.scatter(u_[field], v_[field], s=2, c="0.75", label="field")
        ax.scatter(u_[outlier], v_[outlier], s=4, c="tab:orange", label="outliers")
        points = ax.scatter(
            u_[order], v_[order], c=p[order], s=5, cmap="viridis", vmin=0.5, vmax=1
        )
    spread = 2.0 * mean["dispersion_pm"]
    axes[0].add_patch(
        Circle((mean["pmra"], mean["pmdec"]), spread, fill=False, color="tab:red")
    )
    span = max(10.0 * spread, 2.0)
    if member.any():
        span = max(
            span,
            1.5
            * float(
                np.percentile(
                    np.hypot(
                        pmra[member] - mean["pmra"], pmdec[member] - mean["pmdec"]
                    ),
                    99,
                )
            ),
        )
    axes[0].legend(loc="upper right", markerscale=3, fontsize=8)
    axes[0].set_xlim(mean["pmra"] - span, mean["pmra"] + span)
    axes[0].set_ylim(mean["pmdec"] - span, mean["pmdec"] + span)
    axes[0].set_xlabel("pmra [mas/yr]")
    axes[0].set_ylabel("pmdec [mas/yr]")
    axes[0].set_title(
        f"proper motion: centre ({mean['pmra']:.3f}, {mean['pmdec']:.3f}), "
        f"circle 2 x {mean['dispersion_pm']:.3f} mas/yr",
        fontsize=9,
    )
    axes[1].add_patch(Circle((0.0, 0.0), r50, fill=False, color="tab:red"))
    axes[1].invert_xaxis()  # east to the left
    axes[1].set_aspect("equal")
    axes[1].set_xlabel("east offset [arcmin]")
    axes[1].set_ylabel("north offset [arcmin]")
    axes[1].set_title(
        f"sky: circle r50 = {mean['r50']:.2f} pc ({r50:.2f}') at D = "
        f"{mean['D_stat']:.0f} pc",
        fontsize=9,
    )
    fig.colorbar(points, ax=axes, label="p_member", shrink=0.8)
    return fig


def survey_plot(result: Table, reference: str | None = None):
    """A survey's fitted distances, against a reference column where it has one.

    Each cluster's posterior mean D with its 94 % interval (``D_lo`` to
    ``D_hi``), coloured by ``status``. With ``reference`` (a column of
    distances in the catalogue, e.g. a published ``dist50``) the left panel
    plots D against it with the 1:1 line and the right panel the relative
    difference; without, D by cluster.

    Parameters
    ----------
    result : `~astropy.table.Table`
        What `~gaiadist.survey` returns (or its ``survey.ecsv``).
    reference : str, optional
        The column of reference distances (pc unless it has a unit).
    """
    import matplotlib.pyplot as plt

    names = result.colnames
    d_col = "fit_D" if "fit_D" in names else "D"
    d = column_values(result, d_col, u.pc)
    lo = column_values(result, d_col.replace("D", "D_lo"), u.pc)
    hi = column_values(result, d_col.replace("D", "D_hi"), u.pc)
    status = np.asarray(result["status"]).astype(str)
    colours = {"ok": "tab:blue", "unconverged": "tab:orange", "failed": "tab:red"}
    if reference is not None and reference not in names:
        raise InputError(f"the survey has no column {reference!r} to compare with")
    fig, axes = plt.subplots(
        1,
        2 if reference else 1,
        figsize=(11, 5) if reference else (7, 5),
        layout="constrained",
        squeeze=False,
    )
    x = (
        column_values(result, reference, u.pc)
        if reference
        else np.arange(len(result), dtype=float)
    )
    if reference and not np.any(np.isfinite(x) & (x > 0)):
        raise InputError(f"the column {reference!r} has no positive distance")
    for kind, colour in colours.items():
        pick = (status == kind) & np.isfinite(d) & np.isfinite(x)
        if reference:
            pick &= x > 0
        if not pick.any():
            continue
        err = np.abs(np.stack([d[pick] - lo[pick], hi[pick] - d[pick]]))
        label = f"{kind} ({np.count_nonzero(pick)})"
        axes[0, 0].errorbar(
            x[pick], d[pick], yerr=err, fmt="o", ms=4, color=colour, label=label
        )
        if reference:
            axes[0, 1].errorbar(
                x[pick],
                d[pick] / x[pick] - 1,
                yerr=err / x[pick],
                fmt="o",
                ms=4,
                color=colour,
            )
    ax = axes[0, 0]
    ax.set_ylabel("fitted D [pc] (94 % interval)")
    if reference:
        values = np.r_[x, d]
        values = values[np.isfinite(values) & (values > 0)]
        span = (values.min() / 1.1, values.max() * 1.1)
        ax.plot(span, span, color="0.4", lw=0.8, label="1:1")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{reference} [pc]")
        right = axes[0, 1]
        right.axhline(0.0, color="0.4", lw=0.8)
        for edge in (-0.01, 0.01):
            right.axhline(edge, color="0.6", lw=0.6, ls="--")
        right.set_xscale("log")
        right.set_xlabel(f"{reference} [pc]")
        right.set_ylabel(f"D / {reference} - 1 (dashed: ±1 %)")
    else:
        ax.set_xticks(x, np.asarray(result["name"]).astype(str), rotation=90)
    n_failed = int(np.count_nonzero(status == "failed"))
    ax.set_title(
        f"{len(result)} clusters, {n_failed} failed"
        if reference is None
        else f"{len(result)} clusters against {reference}, {n_failed} failed",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    return fig


def _needs_a_cluster(fit, name: str) -> None:
    """Refuse a fit whose test found no cluster: it has no draws to draw."""
    if not fit.detected:
        raise InputError(
            f"{name}: the fit found no cluster (detection {fit.detection:.1f} "
            "nats; see fit.problems()), so it has no posterior to draw"
        )


def _mean_sd(mean: float, sd: float) -> str:
    """``mean ± sd`` with the sd to two significant digits, the mean to match."""
    if not (np.isfinite(sd) and sd > 0):
        return f"{mean:.4g}"
    digits = max(0, 1 - int(np.floor(np.log10(sd))))
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def cmd_plot(table: Table):
    """Colour-magnitude diagram of the members, over the field.

    Absolute G comes from each star's ``r_med``:
    ``M_G = G - 5 log10(r_med / 10 pc)`` (no extinction). Stars with
    ``p_member >= 0.5`` are coloured by their membership probability, drawn
    from the least to the most probable; the others are grey. Where the
    table knows the truth (a simulation's ``true_member``), a second panel
    shows the true members.

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
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_g = g - 5.0 * np.log10(r / 10.0)
    truth = "true_member" in table.colnames
    fig, axes = plt.subplots(
        1,
        2 if truth else 1,
        figsize=(10, 6) if truth else (5.5, 6),
        layout="constrained",
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    ax = axes[0, 0]
    field = ok & (p < 0.5)
    member = ok & (p >= 0.5)
    ax.scatter(colour[field], abs_g[field], s=2, c="0.75", label="p_member < 0.5")
    order = np.flatnonzero(member)[np.argsort(p[member])]  # most probable on top
    points = ax.scatter(
        colour[order],
        abs_g[order],
        c=p[order],
        s=6,
        cmap="viridis",
        vmin=0.5,
        vmax=1,
        label="p_member ≥ 0.5",
    )
    ax.set_title(f"{np.count_nonzero(member)} stars with p_member ≥ 0.5")
    fig.colorbar(points, ax=axes[0, -1], label="membership probability")
    if truth:
        true = ok & np.asarray(table["true_member"], dtype=bool)
        other = axes[0, 1]
        other.scatter(colour[ok & ~true], abs_g[ok & ~true], s=2, c="0.75")
        other.scatter(colour[true], abs_g[true], s=6, c="k", label="true members")
        other.set_title(f"{np.count_nonzero(true)} true members (simulation)")
        other.legend(loc="upper right", markerscale=2)
    ax.legend(loc="upper right", markerscale=2)
    ax.invert_yaxis()
    for each in axes[0]:
        each.set_xlabel("BP - RP [mag]")
    ax.set_ylabel("absolute G [mag] (from r_med, no extinction)")
    return fig


def predictive_plot(fit, *, num_draws: int = 50, seed: int = 0):
    """Observed parallaxes against prior and posterior predictive ones.

    Histograms of the parallaxes the fit used, and the 5-95 % band over
    ``num_draws`` simulated catalogues from the posterior (and, in a second
    panel, from the prior).
    """
    import matplotlib.pyplot as plt

    _needs_a_cluster(fit, "predictive_plot")
    post = fit.posterior_predictive(num_draws, seed=seed)
    prior = fit.prior_predictive(num_draws, seed=seed)
    observed = post["parallax"].to_value(u.mas)
    used = np.isfinite(observed)
    lo, hi = np.percentile(observed[used], [0.5, 99.5])
    bins = np.linspace(lo, hi, 60)
    centres = 0.5 * (bins[1:] + bins[:-1])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained", sharex=True)
    # The prior's panel is logarithmic: its band is drawn down to half a star
    # per bin, the axis's floor, rather than to zero.
    for ax, table, label, floor in (
        (axes[0], post, "posterior", 0.0),
        (axes[1], prior, "prior", 0.5),
    ):
        reps = table["parallax_rep"].to_value(u.mas)[used]
        counts = np.stack([np.histogram(rep, bins)[0] for rep in reps.T])
        band = np.maximum(np.percentile(counts, [5, 50, 95], axis=0), floor)
        ax.fill_between(
            centres, band[0], band[2], step="mid", alpha=0.4, label=f"{label} 5-95 %"
        )
        ax.step(centres, band[1], where="mid", lw=1, label=f"{label} median")
        ax.hist(
            observed[used], bins, histtype="step", color="k", lw=1.5, label="observed"
        )
        ax.set_xlabel("parallax [mas]")
        ax.set_ylabel("stars per bin" + (" (log scale)" if floor else ""))
        ax.set_title(f"{label} predictive check ({num_draws} catalogues)")
        ax.legend(fontsize="small")
    axes[1].set_yscale("log")
    axes[1].set_ylim(bottom=0.5)
    return fig


def star_distance_plot(table: Table):
    """Posterior distance against parallax, with the 68 % intervals.

    The left panel plots ``r_med`` (``r_lo`` to ``r_hi``) against
    ``1 / parallax`` for the positive parallaxes; the right one against
    parallax over its error, which shows every star with a distance,
    negative parallaxes included, and where the prior takes over.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The output of `~gaiadist.StarDistance.fit`.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FormatStrFormatter

    name = (
        "parallax_corrected" if "parallax_corrected" in table.colnames else "parallax"
    )
    plx = column_values(table, name, u.mas)
    err = column_values(table, "parallax_error", u.mas)
    r_med, r_lo, r_hi = (
        column_values(table, k, u.pc) for k in ("r_med", "r_lo", "r_hi")
    )
    done = np.isfinite(r_med)
    if not np.any(done):
        raise InputError("no row has a finite r_med")
    with np.errstate(invalid="ignore"):
        positive = done & (plx > 0)
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11, 5), layout="constrained", sharey=True
    )
    bars = {"fmt": ".", "ms": 2, "lw": 0.3, "alpha": 0.5}
    top = np.nanpercentile(r_hi[done], 99)
    if np.any(positive):
        left.errorbar(
            1000.0 / plx[positive],
            r_med[positive],
            yerr=[r_med[positive] - r_lo[positive], r_hi[positive] - r_med[positive]],
            **bars,
        )
        left.plot([0, top], [0, top], "k--", lw=1, label="r = 1 / parallax")
        # Parallaxes near zero would stretch the axis to 1e6 pc and beyond.
        left.set_xlim(0.8 * np.min(1000.0 / plx[positive]), 10.0 * top)
        left.legend(loc="upper left")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel(f"1 / {name} [pc]")
    left.set_ylabel("posterior distance r_med (r_lo to r_hi) [pc]")
    n_other = int(np.count_nonzero(done & ~positive))
    left.set_title(
        f"{np.count_nonzero(positive)} stars with {name} > 0"
        + (f" ({n_other} more on the right)" if n_other else "")
    )
    snr = plx[done] / err[done]
    right.errorbar(
        snr,
        r_med[done],
        yerr=[r_med[done] - r_lo[done], r_hi[done] - r_med[done]],
        **bars,
    )
    right.set_xscale("symlog", linthresh=1.0)
    ticks = [-10, -3, -1, 0, 1, 3, 10, 30, 100, 300, 1000]
    right.xaxis.set_major_locator(FixedLocator(ticks))
    right.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    right.axvline(0, color="k", lw=0.5)
    right.set_xlabel(f"{name} / parallax_error")
    right.set_title(f"all {np.count_nonzero(done)} stars with a distance")
    return fig
