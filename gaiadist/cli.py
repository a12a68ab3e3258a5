"""The ``gaiadist`` command."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np

from .bulk import bulk_star_distances
from .cluster import (
    DETECTION_THRESHOLD,
    MAX_DISPERSION,
    MAX_RELATIVE_SIZE,
    MIN_MEMBERS,
    ClusterDistance,
)
from .columns import check_table_file, column_values, read_table, write_table
from .compilation import default_compilation_cache, use_compilation_cache
from .exceptions import GaiadistError
from .query import query_cone
from .simulate import M67_LIKE, cluster_field
from .stars import DistanceFlag, StarDistance
from .surveys import MODES, survey
from .systematics import PARALLAX_SYSTEMATIC
from .zeropoint import ZEROPOINT_COLUMNS, apply_zeropoint

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``gaiadist`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="gaiadist", description="Distances from Gaia DR3 parallaxes."
    )
    parser.add_argument("--version", action="version", version=f"gaiadist {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    # -q and --debug work after the subcommand too ("gaiadist stars F -q").
    common = argparse.ArgumentParser(add_help=False)
    _add_common_options(common, default=argparse.SUPPRESS)
    stars = sub.add_parser(
        "stars",
        parents=[common],
        help="posterior distance of every star in a table",
        description=(
            "Read a Gaia table, apply the Lindegren et al. (2021) zero point when "
            "its inputs are present, and add r_med, r_lo, r_hi (pc) and r_flag."
        ),
    )
    stars.add_argument("input", help="table file (FITS, VOTable, ECSV, CSV, ...)")
    stars.add_argument(
        "-o", "--output", help="output file (default: INPUT stem + _distances.ecsv)"
    )
    _add_prior_options(stars)
    stars.add_argument(
        "--plot", metavar="PNG", help="also draw distance against 1/parallax"
    )
    stars.add_argument(
        "--progress",
        action="store_true",
        help="show a progress bar (shown anyway on a terminal, unless --quiet)",
    )
    stars.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file"
    )
    query = sub.add_parser(
        "query",
        parents=[common],
        help="Gaia DR3 sources in a cone, from the archive or any TAP service",
        description=(
            "Cone search of gaiadr3.gaia_source (or --table) around a name or "
            "RA/Dec; results are cached on disk."
        ),
    )
    query.add_argument("target", help="object name, or 'RA DEC' in degrees")
    query.add_argument("radius", help="cone radius with a unit, e.g. '30 arcmin'")
    query.add_argument(
        "-o", "--output", help="output file; the extension picks the format"
    )
    query.add_argument("--tap-url", help="TAP service (default: the Gaia archive)")
    query.add_argument("--table", help="table to search (default gaiadr3.gaia_source)")
    query.add_argument(
        "--columns",
        help="comma-separated columns; '+name,...' adds to the defaults",
    )
    query.add_argument("--row-limit", type=int, help="return at most this many rows")
    query.add_argument("--timeout", type=float, help="seconds to wait for the service")
    query.add_argument("--no-cache", action="store_true", help="bypass the disk cache")
    query.add_argument(
        "--payload", action="store_true", help="print the ADQL and send nothing"
    )
    query.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file"
    )
    cluster = sub.add_parser(
        "cluster",
        parents=[common],
        help="distance, size and members of a star cluster",
        description=(
            "Fit the hierarchical cluster + field model (ClusterDistance) to the "
            "stars of a table: by default the astrometric model (parallax, proper "
            "motion and position) where the table has proper motions, else the "
            "parallax-only one. Writes the posterior summary (D, r50, the proper "
            "motion centre and dispersion, Q, L, ..., or for the parallax-only "
            "model D, approx_size, L, Q; the settings in its metadata) to "
            "STEM_summary.ecsv and "
            "every input row to STEM_members.ecsv, with p_member, r_med, r_lo, "
            "r_hi and r_flag; rows outside --parallax-range have NaN results and "
            "r_flag 8 (EXCLUDED)."
        ),
    )
    cluster.add_argument("input", help="table file (FITS, VOTable, ECSV, CSV, ...)")
    cluster.add_argument(
        "-o",
        "--output",
        help=(
            "members file (default: INPUT stem + _members.ecsv); the summary "
            "goes beside it, its name ending in _summary.ecsv"
        ),
    )
    cluster.add_argument(
        "--method",
        choices=["marginal", "latent"],
        default="marginal",
        help="marginal (distances integrated out) or latent (slow reference); "
        "default: %(default)s",
    )
    _add_model_option(cluster)
    cluster.add_argument(
        "--distance-guess", help="where to start, with a unit, e.g. '900 pc'"
    )
    cluster.add_argument(
        "--pm-guess",
        nargs=2,
        type=float,
        metavar=("PMRA", "PMDEC"),
        help="a proper motion (mas/yr) where the astrometric model also starts",
    )
    _add_fit_options(cluster, "e.g. 0.2 3 for M67")
    cluster.add_argument(
        "--parallax-systematic",
        type=float,
        default=PARALLAX_SYSTEMATIC.to_value(u.mas),
        metavar="MAS",
        help="sd of the parallax offset the cluster's stars share, included in "
        "D (D_stat leaves it out); 0 leaves it out of D too (default: "
        "%(default)g mas, Maiz Apellaniz et al. 2021)",
    )
    cluster.add_argument(
        "--parallax-error-scale",
        type=float,
        default=1.0,
        metavar="K",
        help="multiply every parallax_error by K before the fit (Gaia's "
        "catalogue errors are underestimated; default: %(default)g)",
    )
    cluster.add_argument(
        "--no-selection",
        action="store_true",
        help="fit the stars inside --parallax-range as if they were the whole "
        "field (the tutorial's treatment); by default the model's "
        "likelihood accounts for the cut, so that Q and L describe the "
        "populations before it",
    )
    cluster.add_argument(
        "--detection-threshold",
        type=float,
        default=DETECTION_THRESHOLD,
        metavar="NATS",
        help="the test for a cluster: below this log likelihood ratio over "
        "the field alone, or with a velocity dispersion above "
        f"{MAX_DISPERSION:g} km/s or fewer than {MIN_MEMBERS:g} members at the "
        "mode (astrometric model) or a width of ln r above "
        f"{MAX_RELATIVE_SIZE:g} (parallax-only model), there is no cluster and "
        "nothing is sampled (default: %(default)g nats)",
    )
    cluster.add_argument(
        "--sample-anyway",
        action="store_true",
        help="sample the cluster model even where the test finds no cluster",
    )
    cluster.add_argument("--progress", action="store_true", help="show a progress bar")
    cluster.add_argument(
        "--plots",
        metavar="FOLDER",
        help="also write corner.png, predictive.png, (astrometric model) "
        "members.png and (with photometry) cmd.png",
    )
    _add_zeropoint_options(cluster)
    cluster.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file"
    )
    surveyp = sub.add_parser(
        "survey",
        parents=[common],
        help="the cluster fit over a catalogue of clusters, resumable",
        description=(
            "Fit ClusterDistance to every cluster of a catalogue (name; ra, dec, "
            "radius to query the archive, or a file column or --stars; optional "
            "distance, pmra, pmdec, epoch). Writes survey.ecsv, members/ and "
            "checkpoints to the output folder; a re-run skips finished clusters."
        ),
    )
    surveyp.add_argument("input", help="cluster catalogue (FITS, ECSV, CSV, ...)")
    surveyp.add_argument(
        "-o", "--output", default="survey", help="output folder (default: survey)"
    )
    surveyp.add_argument(
        "--stars",
        metavar="TEMPLATE",
        help="star files instead of cone searches, e.g. 'cones/{name}.fits'",
    )
    surveyp.add_argument(
        "--mode",
        choices=list(MODES),
        default="sequential",
        help="how the clusters run (default: %(default)s)",
    )
    surveyp.add_argument(
        "--workers", type=int, default=2, help="processes (default: %(default)s)"
    )
    surveyp.add_argument(
        "--scheduler", help="address of a running Dask scheduler (--mode dask)"
    )
    surveyp.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="clusters per program, --mode batched (default: %(default)s)",
    )
    surveyp.add_argument("--tap-url", help="TAP service (default: the Gaia archive)")
    surveyp.add_argument(
        "--compare",
        metavar="COLUMN",
        help="catalogue column of reference distances (pc) that OUTPUT/survey.png "
        "plots the fitted D against (default: the first of "
        f"{', '.join(_REFERENCE_COLUMNS)} the catalogue has)",
    )
    _add_model_option(surveyp)
    _add_fit_options(surveyp, "default: all")
    _add_zeropoint_options(surveyp, skippable=False)
    bulk = sub.add_parser(
        "bulk",
        parents=[common],
        help="distances of every star in many large files, to Parquet (resumable)",
        description=(
            "StarDistance over many files (a folder or a quoted glob such as "
            "'GaiaSource_*.csv.gz'), chunk by chunk; one Parquet dataset per input "
            "file under the output folder. A re-run skips finished files."
        ),
    )
    bulk.add_argument("inputs", help="folder, quoted glob pattern, or one file")
    bulk.add_argument("-o", "--output", required=True, help="output folder")
    _add_prior_options(bulk)
    bulk.add_argument("--columns", help="comma-separated input columns to keep")
    bulk.add_argument(
        "--chunk-rows",
        type=int,
        default=200_000,
        help="rows per chunk and per Parquet part (default: %(default)s)",
    )
    bulk.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Dask local processes (default: %(default)s)",
    )
    bulk.add_argument("--scheduler", help="address of a running Dask scheduler")
    zeropoint = sub.add_parser(
        "zeropoint",
        parents=[common],
        help="add the Lindegren et al. (2021) parallax zero point to a table",
        description=(
            "Add zpt, parallax_corrected, zpt_valid and zpt_flag to every row of "
            "a Gaia DR3 table: the recipe's value (gaiadr3-zeropoint), at the "
            "edge of its range outside it, and -0.017 mas where it cannot be "
            "computed, as Bailer-Jones et al. (2021) did."
        ),
    )
    zeropoint.add_argument("input", help="table file (FITS, VOTable, ECSV, CSV, ...)")
    zeropoint.add_argument(
        "-o", "--output", help="output file (default: INPUT stem + _zpt.ecsv)"
    )
    zeropoint.add_argument(
        "--strict", action="store_true", dest="strict_zeropoint", help=_STRICT_HELP
    )
    zeropoint.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file"
    )
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="the whole pipeline on a simulated M67-like field (no network)",
        description=(
            "Simulate a Gaia DR3 cone with an M67-like cluster (known truth), "
            "apply the zero point, fit ClusterDistance (2 chains of 2,000 draws) "
            "and StarDistance, print the cluster posterior beside the truth and "
            "write the tables."
        ),
    )
    demo.add_argument(
        "-o",
        "--output",
        default="gaiadist_demo",
        help="output folder (default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the simulation and the sampler (default: %(default)s)",
    )
    demo.add_argument(
        "--stars",
        type=int,
        default=4000,
        help="stars in the simulated cone (default: %(default)s)",
    )
    _add_chain_options(demo, num_samples=2000)
    _add_common_options(parser, default=False)
    parser.add_argument(
        "--compile-cache",
        metavar="DIR",
        help=(
            "folder where compiled programs are kept for later runs "
            f"(default: {default_compilation_cache()})"
        ),
    )
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="compile everything afresh and keep nothing on disk",
    )
    args = parser.parse_args(argv)
    _QUIET[0] = args.quiet
    if args.command in _COMPILING and not args.no_compile_cache:
        use_compilation_cache(args.compile_cache)
    with warnings.catch_warnings():
        if args.quiet:
            warnings.simplefilter("ignore")
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand; a gaiadist error is one line and status 2."""
    run = {
        "stars": _stars,
        "query": _query,
        "cluster": _cluster,
        "zeropoint": _zeropoint_command,
        "demo": _demo,
        "survey": _survey,
        "bulk": _bulk,
    }[args.command]
    try:
        return run(args)
    except GaiadistError as exc:
        if args.debug:
            raise
        print(f"gaiadist: error: {exc}", file=sys.stderr)
        return 2


_QUIET = [False]
#: The share of the demo cluster's stars that are outliers.
DEMO_OUTLIERS = 0.15
#: The commands that run compiled JAX programs.
_COMPILING = {"stars", "cluster", "demo", "survey", "bulk"}
_STRICT_HELP = (
    "correct only the sources inside the zero point's calibration; the others "
    "get NaN (default: the recipe's edge value outside its range, -0.017 mas "
    "where it cannot be computed)"
)


def _version() -> str:
    from . import __version__

    return __version__


def _say(*args, **kwargs) -> None:
    """``print``, unless ``--quiet`` was given."""
    if not _QUIET[0]:
        print(*args, **kwargs)


def _query(args: argparse.Namespace) -> int:
    target = _target(args.target)
    radius = _quantity(args.radius, u.deg, "radius")
    columns = args.columns.split(",") if args.columns else None
    options = {
        "columns": columns,
        "table": args.table,
        "tap_url": args.tap_url,
        "row_limit": args.row_limit,
        "timeout": args.timeout,
    }
    if args.payload:
        print(query_cone(target, radius, get_query_payload=True, **options))
        return 0
    output = _output_path(args, "_gaia.ecsv", stem=_slug(args.target))
    start = time.perf_counter()
    table = query_cone(target, radius, cache=not args.no_cache, **options)
    _say(
        f"{len(table)} sources within {radius} of {args.target} "
        f"({time.perf_counter() - start:.1f} s, {table.meta['tap_url']})"
    )
    write_table(table, output, overwrite=args.overwrite)
    _say(f"wrote {output}")
    return 0


def _target(text: str):
    """A name, or two numbers taken as ICRS RA and Dec in degrees."""
    parts = text.replace(",", " ").split()
    if len(parts) == 2:
        try:
            return (float(parts[0]) * u.deg, float(parts[1]) * u.deg)
        except ValueError:
            pass
    return text


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_") or "cone"


def _stars(args: argparse.Namespace) -> int:
    check_table_file(args.input)
    _check_prior_options(args)
    _length_scale(args.length_scale, None)  # a bad value fails before reading
    output = _output_path(args, "_distances.ecsv")
    table = read_table(args.input)
    _say(f"read {len(table)} rows from {args.input}")
    table = _zeropoint(table, args.no_zeropoint, strict=args.strict_zeropoint)

    model = _star_model(args, table.colnames)
    start = time.perf_counter()
    # A bar on a terminal, or wherever --progress asks for one; never with -q.
    progress = False if args.quiet else (True if args.progress else None)
    out = model.fit(table, progress=progress)
    elapsed = time.perf_counter() - start
    ok = np.asarray(out["r_flag"]) == 0
    _say(
        f"distances: {np.count_nonzero(ok)} of {len(out)} stars in {elapsed:.2f} s "
        f"({_describe_prior(args)})"
    )
    plx = "parallax_corrected" if "parallax_corrected" in out.colnames else "parallax"
    cols = ["source_id"] if "source_id" in out.colnames else []
    view = out[cols + [plx, "parallax_error", "r_lo", "r_med", "r_hi", "r_flag"]][:8]
    for name in (plx, "parallax_error"):
        view[name].info.format = ".4f"
    for name in ("r_lo", "r_med", "r_hi"):
        view[name].info.format = ".1f"
    _say(view)

    write_table(out, output, overwrite=args.overwrite)
    _say(f"wrote {output}")
    if args.plot:
        from .plotting import star_distance_plot

        _save_figures({Path(args.plot): lambda: star_distance_plot(out)})
    return 0


def _check_prior_options(args: argparse.Namespace) -> None:
    """Refuse settings ``--prior bj21`` cannot honour, before any reading."""
    if args.prior != "bj21":
        return
    given = [
        name
        for name, value in (
            ("--length-scale", args.length_scale),
            ("--alpha", args.alpha),
            ("--beta", args.beta),
        )
        if value is not None
    ]
    if given:
        raise GaiadistError(
            f"--prior bj21 takes its parameters from its table; drop {', '.join(given)}"
        )
    if args.no_zeropoint:
        raise GaiadistError(
            "--prior bj21 applies Bailer-Jones et al.'s zero point; to use "
            "another, give the file a parallax_corrected column"
        )


def _describe_prior(args: argparse.Namespace) -> str:
    if args.prior == "bj21":
        return "Bailer-Jones et al. (2021) prior of each source's HEALPix pixel"
    return f"{args.prior} prior, L = {args.length_scale or '1.35 kpc'}"


def _zeropoint(table, skip: bool, **options):
    """Apply the zero point when asked and possible, and say what was done."""
    if skip or "parallax_corrected" in table.colnames:
        return table
    if not all(name in table.colnames for name in ZEROPOINT_COLUMNS):
        _say("zero point: not applied (the table lacks its input columns)")
        return table
    table = apply_zeropoint(table, **options)
    valid = np.asarray(table["zpt_valid"])
    zpt = column_values(table, "zpt", u.mas)[valid]
    median = f"{np.median(zpt):.4f} mas" if zpt.size else "none"
    _say(
        f"zero point: median {median} over the {np.count_nonzero(valid)} "
        f"of {len(table)} sources inside the recipe's calibration"
    )
    return table


def _cluster(args: argparse.Namespace) -> int:
    check_table_file(args.input)
    output = _output_path(args, "_members.ecsv")
    summary_path = _summary_path(output, args.overwrite)
    guess = None
    if args.distance_guess:
        guess = _quantity(args.distance_guess, u.pc, "--distance-guess")
    motion = None if args.pm_guess is None else args.pm_guess * u.mas / u.yr
    model = ClusterDistance(
        args.method,
        model=args.model,
        distance_guess=guess,
        proper_motion_guess=motion,
        parallax_systematic=args.parallax_systematic * u.mas,
        parallax_error_scale=args.parallax_error_scale,
        detection_threshold=None if args.sample_anyway else args.detection_threshold,
        max_dispersion=None if args.sample_anyway else MAX_DISPERSION * u.km / u.s,
        max_relative_size=None if args.sample_anyway else MAX_RELATIVE_SIZE,
        min_members=None if args.sample_anyway else MIN_MEMBERS,
        selection=not args.no_selection,
    )
    if args.parallax_range is not None:
        _check_range(args.parallax_range)
    table = read_table(args.input)
    _say(f"read {len(table)} rows from {args.input}")
    table = _zeropoint(table, args.no_zeropoint, strict=args.strict_zeropoint)
    start = time.perf_counter()
    fit = model.fit(
        table,
        seed=args.seed,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        parallax_range=args.parallax_range,
        progress=args.progress,
    )
    elapsed = time.perf_counter() - start
    flag = np.asarray(fit.table["r_flag"])
    used = np.count_nonzero(flag == 0)
    if args.parallax_range is not None:
        lo, hi = args.parallax_range
        kept = np.count_nonzero((flag & DistanceFlag.EXCLUDED) == 0)
        _say(f"selected {kept} of {len(flag)} stars, {lo:g} < parallax < {hi:g} mas")
    _say(f"{fit.model} model, {args.method} fit of {used} stars in {elapsed:.1f} s")
    summary = fit.summary()
    summary.meta["gaiadist"]["input"] = str(args.input)
    if fit.detected:
        _say(_formatted(summary))
        if fit.detection is not None:
            _say(
                f"detection: log likelihood ratio {fit.detection:.1f} nats over "
                "the field alone"
            )
        _say(
            f"members: {summary.meta['n_members']} stars with p_member > 0.5; "
            f"sum of membership probabilities {summary.meta['sum_p_member']:.1f}"
        )
    else:
        _say(f"NO CLUSTER: {fit.problems()[0]}; the distances are the field's")
    write_table(fit.table, output, overwrite=args.overwrite)
    write_table(summary, summary_path, overwrite=args.overwrite)
    _say(f"wrote {summary_path} and {output}")
    if args.plots and not fit.detected:
        _say("no figures: there is no cluster to draw")
    elif args.plots:
        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        _save_figures(_cluster_figures(fit, folder, seed=args.seed))
    return 0


#: Catalogue columns of reference distances the survey's figure compares with:
#: a plain ``distance``, Hunt & Reffert (2023)'s ``dist50`` and Cantat-Gaudin
#: et al. (2020)'s ``DistPc``.
_REFERENCE_COLUMNS = ("distance", "dist50", "DistPc")


def _has_values(table, name: str) -> bool:
    """Whether column ``name`` holds some positive, finite number."""
    values = np.ma.filled(np.ma.asarray(table[name], dtype=float), np.nan)
    return bool(np.any(np.isfinite(values) & (values > 0)))


def _add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        choices=["astrometric", "parallax"],
        default=None,
        help="the cluster model; default: astrometric where the stars have "
        "proper motions (with errors and correlations), else parallax",
    )


def _summary_path(members: Path, overwrite: bool) -> Path:
    """Where ``cluster`` writes its summary: beside the members file."""
    stem = members.name.split(".")[0].removesuffix("_members")
    path = members.with_name(stem + "_summary.ecsv")
    if path.exists() and not overwrite:
        raise GaiadistError(f"{path} exists; pass --overwrite to replace it")
    return path


def _check_range(bounds) -> None:
    lo, hi = bounds
    if not lo < hi:
        raise GaiadistError(
            f"--parallax-range {lo:g} {hi:g} is empty: give MIN before MAX, "
            f"e.g. --parallax-range {min(lo, hi):g} {max(lo, hi):g}"
        )


def _cluster_figures(fit, folder: Path, *, seed: int, truth=None) -> dict:
    """The cluster fit's figures, as file name -> function that draws it.

    The colour-magnitude diagram needs photometry, so it is left out when the
    table has none.
    """
    from . import plotting

    figures = {
        folder / "corner.png": lambda: plotting.corner_plot(fit, truth=truth),
        folder / "predictive.png": lambda: plotting.predictive_plot(fit, seed=seed),
    }
    if fit.model == "astrometric":
        figures[folder / "members.png"] = lambda: plotting.members_plot(fit)
    if all(name in fit.table.colnames for name in ("bp_rp", "phot_g_mean_mag")):
        figures[folder / "cmd.png"] = lambda: plotting.cmd_plot(fit.table)
    return figures


def _save_figures(figures: dict) -> None:
    """Draw each figure and save it as a PNG file (no screen needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for path, draw in figures.items():
        fig = draw()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    _say(f"wrote {', '.join(str(path) for path in figures)}")


def _survey(args: argparse.Namespace) -> int:
    check_table_file(args.input)
    if args.parallax_range is not None:
        _check_range(args.parallax_range)
    catalogue = read_table(args.input)
    _say(f"read {len(catalogue)} clusters from {args.input}")
    out = survey(
        args.input,
        args.output,
        stars=args.stars,
        mode=args.mode,
        workers=args.workers,
        scheduler=args.scheduler,
        batch_size=args.batch_size,
        parallax_range=args.parallax_range,
        model=args.model,
        seed=args.seed,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        query={"tap_url": args.tap_url} if args.tap_url else None,
        strict_zeropoint=args.strict_zeropoint,
        progress=False if args.quiet else None,
    )
    # Each model's size: r50 (astrometric) or approx_size (parallax-only).
    sizes = [
        c for c in ("r50", "approx_size") if np.any(np.isfinite(np.asarray(out[c])))
    ]
    view = out[["name", "status", "detection", "D", "D_sd", *sizes, "Q", "n_members"]]
    view["r_hat_max"] = out["r_hat_max"]
    for name in ("detection", "D", "D_sd", *sizes, "Q"):
        view[name].info.format = ".4g"
    view["r_hat_max"].info.format = ".3f"
    _say(view)
    status = list(out["status"])
    fitted = len(status) - status.count("failed")
    _say(
        f"{fitted} fitted, {status.count('failed')} failed, "
        f"{status.count('unconverged')} of the fitted with convergence warnings, "
        f"{status.count('no cluster')} with no cluster found"
    )
    for row in out[out["status"] == "failed"]:
        _say(f"  {row['name']}: {row['message']}")
    _say(f"wrote {Path(args.output) / 'survey.ecsv'} and members/ there")
    if args.compare is not None and args.compare not in catalogue.colnames:
        raise GaiadistError(f"--compare: the catalogue has no column {args.compare!r}")
    reference = args.compare or next(
        (
            c
            for c in _REFERENCE_COLUMNS
            if c in catalogue.colnames and _has_values(out, c)
        ),
        None,
    )
    from .plotting import survey_plot

    _save_figures(
        {Path(args.output) / "survey.png": lambda: survey_plot(out, reference)}
    )
    return 0


def _bulk(args: argparse.Namespace) -> int:
    _check_prior_options(args)
    # The files' columns are unknown here: a name is looked up in each chunk.
    model = _star_model(args, None)
    start = time.perf_counter()
    out = bulk_star_distances(
        args.inputs,
        args.output,
        model=model,
        zeropoint=not args.no_zeropoint,
        strict_zeropoint=args.strict_zeropoint,
        columns=args.columns.split(",") if args.columns else None,
        chunk_rows=args.chunk_rows,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=False if args.quiet else None,
    )
    elapsed = time.perf_counter() - start
    status = list(out["status"])
    rows = int(np.sum(out["rows"][out["status"] == "done"]))
    _say(
        f"{status.count('done')} files done ({rows} stars in {elapsed:.1f} s), "
        f"{status.count('skipped')} finished before, {status.count('failed')} failed"
    )
    for row in out[out["status"] == "failed"]:
        _say(f"  {row['input']}: {row['message']}")
    _say(f"wrote {args.output}/")
    return 1 if status.count("failed") else 0


def _formatted(summary):
    """The fit summary with print formats: 4 digits, 3-decimal r_hat."""
    for name in ("mean", "sd", "hdi_3%", "hdi_97%", "truth"):
        if name in summary.colnames:
            summary[name].info.format = ".4g"
    summary["r_hat"].info.format = ".3f"
    return summary


def _quantity(text: str, unit: u.UnitBase, option: str) -> u.Quantity:
    """``text`` as a Quantity of ``unit``'s kind; a bare number is refused."""
    wanted = {
        "length": "a length such as '900 pc' or '1.35kpc'",
        "angle": "an angle such as '30 arcmin'",
    }.get(str(unit.physical_type), f"a quantity in {unit}")
    try:
        value = u.Quantity(text)
    except (TypeError, ValueError):
        raise GaiadistError(f"{option} {text!r} is not {wanted}") from None
    if value.unit == u.dimensionless_unscaled:
        raise GaiadistError(f"{option} {text!r} has no unit: give {wanted}")
    if not value.unit.is_equivalent(unit):
        raise GaiadistError(f"{option} {text!r} is in {value.unit}: give {wanted}")
    return value


def _zeropoint_command(args: argparse.Namespace) -> int:
    check_table_file(args.input)
    output = _output_path(args, "_zpt.ecsv")
    table = read_table(args.input)
    _say(f"read {len(table)} rows from {args.input}")
    missing = [name for name in ZEROPOINT_COLUMNS if name not in table.colnames]
    if missing:
        raise GaiadistError(
            f"the table lacks the zero point's input columns {', '.join(missing)}"
        )
    table = _zeropoint(table, False, strict=args.strict_zeropoint)
    write_table(table, output, overwrite=args.overwrite)
    _say(f"wrote {output}")
    return 0


def _output_path(
    args: argparse.Namespace, suffix: str, stem: str | None = None
) -> Path:
    """``--output``, or ``stem`` (the input's) + ``suffix``; refuses to clobber."""
    if stem is None:
        stem = Path(args.input).name.split(".")[0]
    output = Path(args.output or stem + suffix)
    if output.exists() and not args.overwrite:
        raise GaiadistError(f"{output} exists; pass --overwrite to replace it")
    return output


def _demo(args: argparse.Namespace) -> int:
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stars = cluster_field(
        args.stars, seed=args.seed, outlier_share=DEMO_OUTLIERS, **M67_LIKE
    )
    made = stars.meta["truth"]
    _say(
        f"simulated {len(stars)} Gaia DR3 stars around M67's position: a cluster "
        f"at {M67_LIKE['distance']} with {made['n_members'] - made['n_outliers']} "
        f"members and {made['n_outliers']} outliers (their proper motions "
        f"{made['outlier_widen']:g} times as dispersed), the rest field stars"
    )
    stars = _zeropoint(stars, False)
    # No parallax cut: the model's field is the whole EDSD population, and a
    # cut would bias L and Q away from the truth they are compared with.
    # The demo compares with the truth and draws a corner plot: by default
    # it takes twice the fit's default draws, for smooth tails.
    fit = ClusterDistance().fit(
        stars,
        seed=args.seed,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
    )
    _say(f"cluster fit in {fit.seconds:.1f} s")
    summary = fit.summary()
    truth = dict(
        stars.meta["truth"],
        dispersion=made["velocity_dispersion"],
        outlier_dispersion=made["velocity_dispersion"] * made["outlier_widen"],
        D_stat=made["D"],
    )
    summary["truth"] = [truth.get(name, np.nan) for name in summary["parameter"]]
    summary = summary[[name in truth for name in summary["parameter"]]]
    _say(_formatted(summary))
    members = fit.table
    _say(
        f"members: {summary.meta['n_members']} stars with p_member > 0.5; sum of "
        f"membership probabilities {summary.meta['sum_p_member']:.1f}; "
        f"true members {made['n_members'] - made['n_outliers']}; sum of outlier "
        f"probabilities {np.nansum(members['p_outlier']):.1f}; true outliers "
        f"{made['n_outliers']}"
    )
    # Each star on its own, under the field's prior as the cluster fit found it.
    length = np.mean(fit.samples["L"]) * u.pc
    distances = StarDistance(length_scale=length).fit(stars)
    ok = np.asarray(distances["r_flag"]) == 0
    inside = (distances["r_lo"] <= distances["true_distance"]) & (
        distances["true_distance"] <= distances["r_hi"]
    )
    field = ok & ~np.asarray(stars["true_member"])
    _say(
        f"StarDistance (EDSD, L = {length:.0f}): the true distance lies between "
        f"r_lo and r_hi for {np.mean(inside[field]):.0%} of the field stars "
        "(68% expected)"
    )
    written = {
        "cluster_summary.ecsv": summary,
        "cluster_members.ecsv": members,
        "star_distances.ecsv": distances,
    }
    for name, table in written.items():
        write_table(table, folder / name, overwrite=True)
    _say(f"wrote {', '.join(written)} to {folder}/")
    from .plotting import star_distance_plot

    figures = _cluster_figures(fit, folder, seed=args.seed, truth=truth)
    figures[folder / "star_distances.png"] = lambda: star_distance_plot(distances)
    _save_figures(figures)
    _say(f"{time.perf_counter() - start:.0f} s in all")
    return 0


def _add_common_options(parser: argparse.ArgumentParser, default) -> None:
    """``--debug`` and ``-q``, on the command and (not defaulted) on each subcommand."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="show the full traceback of an error",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="print nothing but errors (no results, warnings or progress bars)",
    )


def _add_fit_options(parser: argparse.ArgumentParser, range_note: str) -> None:
    """The star cut and sampler options of ``cluster`` and ``survey``."""
    parser.add_argument(
        "--parallax-range",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        help=f"keep stars with MIN < parallax < MAX (mas); {range_note}",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="sampler seed (default: %(default)s)"
    )
    _add_chain_options(parser, num_samples=1000)
    parser.add_argument(
        "--num-chains",
        type=int,
        default=2,
        help="NUTS chains (default: %(default)s)",
    )


def _add_chain_options(parser: argparse.ArgumentParser, num_samples: int) -> None:
    """``--num-warmup`` (300) and ``--num-samples``, NUTS's steps per chain."""
    parser.add_argument(
        "--num-warmup",
        type=int,
        default=300,
        help="NUTS warm-up steps per chain (default: %(default)s)",
    )
    parser.add_argument(
        "--num-samples",
        type=int,
        default=num_samples,
        help="NUTS draws per chain (default: %(default)s)",
    )


def _add_prior_options(parser: argparse.ArgumentParser) -> None:
    """The distance prior and zero point options of ``stars`` and ``bulk``."""
    parser.add_argument(
        "--prior",
        choices=["edsd", "ggd", "bj21"],
        default="edsd",
        help="distance prior: exponentially decreasing space density, "
        "generalised gamma, or Bailer-Jones et al. (2021)'s geometric prior of "
        "each source's HEALPix pixel, found from source_id (default: %(default)s)",
    )
    parser.add_argument(
        "--length-scale",
        default=None,
        help="prior length scale with a unit, e.g. '1.35kpc' or '500 pc', or a "
        "column name (default: 1.35 kpc; not with --prior bj21)",
    )
    parser.add_argument("--alpha", type=float, help="generalised gamma alpha")
    parser.add_argument("--beta", type=float, help="generalised gamma beta")
    _add_zeropoint_options(parser)


def _add_zeropoint_options(
    parser: argparse.ArgumentParser, *, skippable: bool = True
) -> None:
    """``--strict-zeropoint``, and ``--no-zeropoint`` where it can be left out.

    ``stars``, ``bulk`` and ``cluster`` can skip the zero point; ``survey``
    always applies it.
    """
    if skippable:
        parser.add_argument(
            "--no-zeropoint", action="store_true", help="do not apply the zero point"
        )
    parser.add_argument("--strict-zeropoint", action="store_true", help=_STRICT_HELP)


def _star_model(args: argparse.Namespace, colnames: list[str] | None) -> StarDistance:
    """The `StarDistance` the prior options ask for.

    ``colnames`` are the table's columns, or None where they are not known
    yet; then a length scale that is not a length is taken as a column name.
    """
    return StarDistance(
        prior=args.prior,
        length_scale=_length_scale(args.length_scale, colnames),
        alpha=args.alpha,
        beta=args.beta,
    )


def _length_scale(text: str | None, colnames: list[str] | None) -> u.Quantity | str:
    if text is None:
        return None
    if colnames is not None and text in colnames:
        return text
    try:
        value = u.Quantity(text)
    except (TypeError, ValueError):
        if colnames is None:
            return text
        raise GaiadistError(
            f"--length-scale {text!r} is neither a length such as '1.35 kpc' nor "
            "a column of the table"
        ) from None
    if value.unit == u.dimensionless_unscaled:
        raise GaiadistError(
            f"--length-scale {text!r} has no unit: give a length such as "
            "'1.35kpc' or '500 pc', or a column name"
        )
    return value
