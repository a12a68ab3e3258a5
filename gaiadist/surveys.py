"""Many clusters, one analysis: `survey`.

Each cluster of an input table goes through the same steps: its stars come
from a cone search or a local file, the parallax zero point is applied, and
`ClusterDistance` is fitted. One row per cluster summarises the posterior and
the fit's health, and each cluster's stars are written with their membership
probabilities.

A cluster that fails (an empty cone, an unreachable archive, too few stars)
gets ``status="failed"`` and its error message; the others go on. Every
finished cluster is checkpointed at once (``results/NAME.json`` and
``members/NAME.fits`` under the output folder), so an interrupted survey run
again with the same settings picks up where it stopped; clusters that failed
are tried again.

Modes of execution:

- ``"sequential"``: one cluster after the other in this process. Clusters
  whose star counts fall in the same size class share one compilation.
- ``"processes"``: a pool of local worker processes.
- ``"dask"``: a Dask distributed cluster, an existing one (``scheduler``: its
  address or a `distributed.Client`) or a `distributed.LocalCluster` started
  for the survey. Workers need gaiadist installed.

Worker processes (``"processes"`` and ``"dask"``) keep JAX's persistent
compilation cache in the folder of the process that calls `survey`, if it
has one (`gaiadist.use_compilation_cache`), else in ``output/jax_cache``: a
program compiled by one worker (or already by the caller) is loaded, not
compiled again, by the others and by a resumed survey. The process that
calls `survey` is left with JAX's settings as they were.
- ``"batched"``: ``batch_size`` clusters at a time in one compiled program
  (`ClusterDistance.fit_many`), for GPUs.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import astropy.units as u
import jax
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import QTable, Table
from astropy.time import Time
from tqdm import tqdm

from ._dask import dask_client
from .cluster import ClusterDistance
from .columns import read_gaia, read_table, write_table
from .compilation import use_compilation_cache
from .exceptions import GaiadistError, GaiadistWarning, InputError
from .provenance import describe_distribution
from .query import query_cone
from .zeropoint import ZEROPOINT_COLUMNS, apply_zeropoint

__all__ = ["MODES", "RESULT_COLUMNS", "survey"]

#: How `survey` runs the clusters.
MODES = ("sequential", "processes", "dask", "batched")

#: Columns `survey` adds after the input's, with their units; one whose name
#: the catalogue already has is added as ``fit_NAME`` instead.
RESULT_COLUMNS = {
    "status": None,
    "message": None,
    "model": None,
    "n_stars": None,
    "n_used": None,
    "detection": None,
    "D": u.pc,
    "D_sd": u.pc,
    "D_lo": u.pc,
    "D_hi": u.pc,
    "D_stat_sd": u.pc,
    "approx_size": u.pc,
    "approx_size_sd": u.pc,
    "r50": u.pc,
    "r50_sd": u.pc,
    "pmra": u.mas / u.yr,
    "pmra_sd": u.mas / u.yr,
    "pmdec": u.mas / u.yr,
    "pmdec_sd": u.mas / u.yr,
    "dispersion": u.km / u.s,
    "dispersion_sd": u.km / u.s,
    "L": u.pc,
    "L_sd": u.pc,
    "Q": None,
    "Q_sd": None,
    "outlier_share": None,
    "outlier_share_sd": None,
    "n_members": None,
    "sum_p_member": None,
    "r_hat_max": None,
    "ess_min": None,
    "divergences": None,
    "quadrature_check": None,
    "seconds": u.s,
    "members_file": None,
}
#: The summary rows the survey reports, where the model has them (NaN where
#: not: ``approx_size`` is the parallax-only model's, the rest but D, L and Q
#: the astrometric model's).
_POPULATION_ROWS = (
    "D",
    "approx_size",
    "r50",
    "pmra",
    "pmdec",
    "dispersion",
    "L",
    "Q",
    "outlier_share",
)
# 2: one zero-point rule (apply_zeropoint); 3: the astrometric model;
# 4: D with the shared parallax systematic; 5: the detection test;
# 6: the cluster's outliers
_CHECKPOINT_VERSION = 6


@dataclass(frozen=True)
class _Settings:
    """Everything that decides a cluster's result (the checkpoint key)."""

    stars: str | None
    parallax_range: tuple | None
    model: str | None = None
    priors: dict = field(default_factory=dict)
    seed: int = 0
    num_warmup: int = 300
    num_samples: int = 1000
    num_chains: int = 2
    member_threshold: float = 0.5
    query: dict = field(default_factory=dict)
    strict_zeropoint: bool = False

    def key(self) -> str:
        """A text that changes whenever a setting does."""
        plain = asdict(self)
        plain["priors"] = {
            k: describe_distribution(v) for k, v in sorted(self.priors.items())
        }
        plain["version"] = _CHECKPOINT_VERSION
        return json.dumps(plain, sort_keys=True, default=str)


def survey(
    clusters: Table | str | os.PathLike,
    output: str | os.PathLike,
    *,
    stars: str | None = None,
    mode: str = "sequential",
    workers: int = 2,
    scheduler=None,
    batch_size: int = 8,
    parallax_range: tuple[float, float] | None = None,
    model: str | None = None,
    priors: dict | None = None,
    seed: int = 0,
    num_warmup: int = 300,
    num_samples: int = 1000,
    num_chains: int = 2,
    member_threshold: float = 0.5,
    query: dict | None = None,
    strict_zeropoint: bool = False,
    progress: bool | None = None,
) -> QTable:
    """Fit `ClusterDistance` to every cluster of a catalogue.

    Parameters
    ----------
    clusters : `~astropy.table.Table` or path
        One row per cluster. ``name`` (unique) is required. To query the
        stars: ``ra``, ``dec`` (degrees unless they carry units) and
        ``radius`` (degrees unless they carry units); optionally ``pmra``,
        ``pmdec`` (mas/yr) and ``epoch`` (Julian year of ``ra, dec``), which
        move the cone's centre to the Gaia epoch. Optional ``distance`` (pc
        unless it carries units; NaN or masked for none) is where the fit
        starts looking for the cluster. Optional ``file`` names a file of
        stars for that cluster; a relative path is taken relative to the
        catalogue's folder when ``clusters`` is a file. Optional
        ``parallax_min`` and ``parallax_max`` (mas unless they carry units;
        NaN or masked for an open end), or else ``parallax_cut``, a text
        such as ``"parallax > 1.5"`` or ``"0.2 < parallax < 3"`` (empty or
        masked for none), give the cut that made that cluster's stars: it
        replaces ``parallax_range`` for that cluster.
    output : path
        Folder for the results: ``survey.ecsv`` (one row per cluster),
        ``members/NAME.fits`` (every star of each cluster with ``p_member``,
        ``r_med``, ``r_lo``, ``r_hi``), the checkpoints ``results/NAME.json``
        and, for worker processes, ``jax_cache/``.
    stars : str, optional
        Where each cluster's stars come from when it has no ``file``: a path
        template filled from the row, such as ``"cones/{name}.fits"`` (any
        format `~gaiadist.read_gaia` reads). By default, a cone search
        (`~gaiadist.query_cone`, cached on disk).
    mode : {"sequential", "processes", "dask", "batched"}, optional
        How the clusters are run (see the module's description).
    workers : int, optional
        Worker processes for ``"processes"``, and for ``"dask"`` when it
        starts its own local cluster.
    scheduler : str or `distributed.Client`, optional
        For ``"dask"``: an existing cluster's scheduler address (such as
        ``"tcp://10.0.0.1:8786"``) or client. By default a
        `distributed.LocalCluster` with ``workers`` processes.
    batch_size : int, optional
        Clusters per compiled program for ``"batched"``.
    parallax_range : (float, float), optional
        Fit only the stars with ``min < parallax < max`` (mas), as
        `ClusterDistance.fit` does (the cut in the likelihood), for every
        cluster without a cut of its own in the catalogue; the members
        files keep every star.
        By default every star is used: the model's field component is the
        whole population, and a cut biases its length scale and ``Q``.
    model : {"astrometric", "parallax"}, optional
        The cluster model, as for `ClusterDistance`: by default the
        astrometric one wherever the stars have proper motions. The
        catalogue's ``distance`` and its ``pmra``, ``pmdec`` are where the
        mode search also starts.
    priors : dict, optional
        Priors replacing the defaults, as for `ClusterDistance`.
    seed, num_warmup, num_samples, num_chains : int, optional
        Sampler settings, as for `ClusterDistance.fit`; every cluster uses
        ``seed``.
    member_threshold : float, optional
        ``n_members`` counts the stars with ``p_member`` above this.
    query : dict, optional
        Keyword arguments for `~gaiadist.query_cone` (``tap_url``, ``table``,
        ``columns``, ``row_limit``, ``timeout``).
    strict_zeropoint : bool, optional
        Correct only the sources inside the zero point's calibration, as
        ``apply_zeropoint(strict=True)`` does.
    progress : bool or None, optional
        A progress bar over the clusters; ``None`` shows it only when
        standard error is a terminal.

    Returns
    -------
    `~astropy.table.QTable`
        The input rows and columns, in order, followed by `RESULT_COLUMNS`:
        ``status`` (``"ok"``, ``"unconverged"`` when the fit warned about
        r_hat, ESS, divergences or its quadrature, ``"no cluster"`` when the
        astrometric model's detection test found none, with NaN parameters,
        or ``"failed"``), ``message`` (the error, or the fit's warnings),
        ``detection`` (`ClusterFit.detection`, nats; NaN for the
        parallax-only model), the posterior mean
        and sd of ``D``, ``approx_size`` (parallax-only model), ``r50``,
        ``pmra``, ``pmdec``, ``dispersion`` (astrometric model; NaN where the
        model has none), ``L`` and ``Q``, ``D_lo`` and
        ``D_hi`` (the 94 % highest-density interval, as in
        `ClusterFit.summary`; ``D`` with the shared parallax systematic),
        ``D_stat_sd`` (D's statistical sd alone), ``n_members``,
        ``sum_p_member``, the worst ``r_hat`` and smallest ESS over those
        parameters, the number of
        divergences, ``quadrature_check``, the fit's ``seconds`` and the
        members file. Also written to ``output/survey.ecsv``.

    Raises
    ------
    InputError
        If the catalogue lacks a needed column, has repeated names, or an
        argument is invalid. Failures of single clusters are not raised.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, not {mode!r}")
    if int(workers) < 1 or int(batch_size) < 1:
        raise InputError("workers and batch_size must be positive")
    catalogue = read_table(clusters)
    # Relative star files are where the catalogue is, not where we run.
    base = Path(clusters).parent if isinstance(clusters, str | os.PathLike) else None
    tasks = _tasks(catalogue, stars, base)
    settings = _Settings(
        stars=stars,
        parallax_range=None if parallax_range is None else tuple(parallax_range),
        model=model,
        priors=dict(priors or {}),
        seed=int(seed),
        num_warmup=int(num_warmup),
        num_samples=int(num_samples),
        num_chains=int(num_chains),
        member_threshold=float(member_threshold),
        query=dict(query or {}),
        strict_zeropoint=bool(strict_zeropoint),
    )
    # Refuse a bad model or priors before starting.
    ClusterDistance(model=model, priors=settings.priors)
    folder = Path(output)
    for sub in ("results", "members"):
        (folder / sub).mkdir(parents=True, exist_ok=True)

    results = {}
    todo = []
    for task in tasks:
        done = _load_checkpoint(folder, task["slug"], _own_settings(settings, task))
        if done is None:
            todo.append(task)
        else:
            results[task["slug"]] = done
    bar = tqdm(
        total=len(tasks),
        initial=len(results),
        desc="clusters",
        unit="cluster",
        disable=None if progress is None else not progress,
    )

    def finished(task, row, members):
        row["members_file"] = ""
        if members is not None:
            path = folder / "members" / f"{task['slug']}.fits"
            try:
                _write_atomic(members, path)
                row["members_file"] = str(Path("members") / path.name)
            except Exception as exc:  # noqa: BLE001 - one cluster never stops a survey
                failed = _failed(exc, row.get("seconds", math.nan))
                row.update(failed, message=f"writing {path}: {failed['message']}")
        _save_checkpoint(folder, task["slug"], _own_settings(settings, task), row)
        results[task["slug"]] = row
        bar.update(1)

    runner = {
        "sequential": _run_sequential,
        "processes": _run_processes,
        "dask": _run_dask,
        "batched": _run_batched,
    }[mode]
    try:
        runner(
            todo,
            settings,
            finished,
            workers=int(workers),
            scheduler=scheduler,
            batch_size=int(batch_size),
            cache_dir=_worker_cache(folder),
        )
    finally:
        bar.close()
    out = _result_table(catalogue, tasks, results)
    write_table(out, folder / "survey.ecsv", overwrite=True)
    return out


def _tasks(catalogue: Table, stars: str | None, base: Path | None) -> list[dict]:
    """One plain dict per cluster: what a worker needs to fetch and fit it.

    A relative path in the ``file`` column is taken relative to ``base``
    (the catalogue's folder), when given.
    """
    if len(catalogue) == 0:
        raise InputError("the cluster catalogue is empty")
    if "name" not in catalogue.colnames:
        raise InputError("the cluster catalogue needs a 'name' column")
    names = [str(x).strip() for x in catalogue["name"]]
    slugs = [_slug(x) for x in names]
    if len(set(slugs)) != len(slugs):
        repeated = sorted({x for x in slugs if slugs.count(x) > 1})
        raise InputError(f"cluster names must be unique; repeated: {repeated}")
    has_file = "file" in catalogue.colnames
    if stars is None and not has_file:
        missing = [c for c in ("ra", "dec", "radius") if c not in catalogue.colnames]
        if missing:
            raise InputError(
                f"to query each cluster's stars the catalogue needs "
                f"{', '.join(missing)} (or give stars='cones/{{name}}.fits' or a "
                "'file' column)"
            )
    angles = {
        c: _column(catalogue, c, u.deg)
        for c in ("ra", "dec", "radius")
        if c in catalogue.colnames
    }
    motion = {
        c: _column(catalogue, c, u.mas / u.yr)
        for c in ("pmra", "pmdec")
        if c in catalogue.colnames
    }
    epoch = _column(catalogue, "epoch", u.dimensionless_unscaled)
    distance = _column(catalogue, "distance", u.pc)
    cuts = _row_cuts(catalogue, names)
    tasks = []
    for i, (name, slug) in enumerate(zip(names, slugs, strict=True)):
        row = {c: catalogue[c][i] for c in catalogue.colnames}
        source = None
        if has_file and not np.ma.is_masked(row["file"]) and str(row["file"]):
            source = str(row["file"])
            if base is not None and not Path(source).is_absolute():
                source = str(base / source)
        elif stars is not None:
            try:
                source = stars.format(**{k: _plain(v) for k, v in row.items()})
            except (KeyError, IndexError, ValueError) as exc:
                raise InputError(
                    f"stars template {stars!r} does not fit the catalogue: {exc}"
                ) from None
        task = {"name": name, "slug": slug, "file": source}
        task.update({c: float(v[i]) for c, v in angles.items()})
        task.update({c: float(v[i]) for c, v in motion.items()})
        task["epoch"] = float(epoch[i]) if epoch is not None else math.nan
        task["distance"] = float(distance[i]) if distance is not None else math.nan
        task["parallax_range"] = cuts[i]
        tasks.append(task)
    return tasks


#: A comparison of ``parallax`` with a number, as in a ``parallax_cut`` text.
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CLAUSE = re.compile(
    rf"^\s*(?:(?P<left>{_NUMBER})\s*(?P<op_left><=?|>=?)\s*)?parallax"
    rf"\s*(?:(?P<op_right><=?|>=?)\s*(?P<right>{_NUMBER}))?\s*$"
)


def _row_cuts(catalogue: Table, names: list[str]) -> list[tuple | None]:
    """Each row's own parallax cut (mas), or None where it has none.

    From ``parallax_min`` and ``parallax_max`` (mas unless they carry
    units; NaN or masked for an open end), or else from a ``parallax_cut``
    text such as ``"parallax > 1.5"`` or ``"0.2 < parallax < 3"`` (clauses
    joined by ``and``; empty or masked for none).
    """
    n = len(catalogue)
    low = _column(catalogue, "parallax_min", u.mas)
    high = _column(catalogue, "parallax_max", u.mas)
    if low is not None or high is not None:
        low = np.full(n, np.nan) if low is None else low
        high = np.full(n, np.nan) if high is None else high
        cuts = []
        for name, lo, hi in zip(names, low, high, strict=True):
            if np.isnan(lo) and np.isnan(hi):
                cuts.append(None)
                continue
            cut = (-math.inf if np.isnan(lo) else lo, math.inf if np.isnan(hi) else hi)
            if not cut[0] < cut[1]:
                raise InputError(
                    f"cluster {name!r}: parallax_min {lo:g} is not below "
                    f"parallax_max {hi:g}"
                )
            cuts.append(tuple(float(c) for c in cut))
        return cuts
    if "parallax_cut" not in catalogue.colnames:
        return [None] * n
    return [
        _parse_cut(value, name)
        for name, value in zip(names, catalogue["parallax_cut"], strict=True)
    ]


def _parse_cut(text, name: str) -> tuple | None:
    """``(min, max)`` in mas from a ``parallax_cut`` text, or None if empty."""
    if np.ma.is_masked(text) or not str(text).strip():
        return None
    lo, hi = -math.inf, math.inf
    for clause in re.split(r"\s+and\s+|&", str(text).strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(clause)
        if match is None or not (match["left"] or match["right"]):
            raise InputError(
                f"cluster {name!r}: cannot read the parallax_cut {str(text)!r}; "
                "write it as 'parallax > 1.5', '0.2 < parallax < 3' or "
                "'parallax > 0.2 and parallax < 3' (mas), or give parallax_min "
                "and parallax_max columns"
            )
        # "X < parallax" bounds it below, "parallax < X" above, and so on.
        for value, op, below in (
            (match["left"], match["op_left"], "<"),
            (match["right"], match["op_right"], ">"),
        ):
            if value is None:
                continue
            if op.startswith(below):
                lo = max(lo, float(value))
            else:
                hi = min(hi, float(value))
    if not lo < hi:
        raise InputError(f"cluster {name!r}: the parallax_cut {str(text)!r} is empty")
    return (lo, hi)


def _own_settings(settings: _Settings, task: dict) -> _Settings:
    """``settings`` with the task's own parallax cut, where it has one."""
    if task.get("parallax_range") is None:
        return settings
    return replace(settings, parallax_range=tuple(task["parallax_range"]))


def _column(table: Table, name: str, unit) -> np.ndarray | None:
    """Column ``name`` as floats in ``unit`` (bare numbers taken as ``unit``)."""
    if name not in table.colnames:
        return None
    col = table[name]
    try:
        if getattr(col, "unit", None) is not None:
            values = u.Quantity(col).to_value(unit)
        else:
            values = np.asarray(col, dtype=float)
    except (u.UnitsError, TypeError, ValueError):
        raise InputError(
            f"column {name!r} must be numbers in {unit or 'plain numbers'}, "
            f"not {getattr(col, 'unit', None) or col.dtype}"
        ) from None
    mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else False
    return np.where(mask, np.nan, np.asarray(values, dtype=float))


def _plain(value):
    """A table cell as a plain Python value, for path templates."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _slug(name: str) -> str:
    """A file-name-safe version of a cluster name."""
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("._")
    if not slug:
        raise InputError(f"cluster name {name!r} has no usable characters")
    return slug


# ---------------------------------------------------------------------------
# One cluster


_MODELS: dict = {}  # one ClusterDistance per process and settings: its compilations


def _model(
    settings: _Settings, distance: float, motion: tuple = (math.nan, math.nan)
) -> ClusterDistance:
    """The process's model for ``settings``, starting at the catalogue's guesses.

    Clusters with different parallax cuts share one model, and so its
    compiled programs.
    """
    key = replace(settings, parallax_range=None).key()
    if key not in _MODELS:
        _MODELS[key] = ClusterDistance(model=settings.model, priors=settings.priors)
    model = _MODELS[key]
    model.distance_guess = distance if np.isfinite(distance) else None
    model.proper_motion_guess = (
        tuple(float(m) for m in motion) if np.all(np.isfinite(motion)) else None
    )
    return model


def _load_stars(task: dict, settings: _Settings) -> Table:
    """The cluster's stars, with the zero point applied."""
    if task["file"] is not None:
        table = read_gaia(task["file"])
    elif "radius" not in task:
        raise InputError(
            "no star file for this cluster, and the catalogue has no ra, dec, "
            "radius to query"
        )
    else:
        table = query_cone(_centre(task), task["radius"] * u.deg, **settings.query)
    if len(table) and all(name in table.colnames for name in ZEROPOINT_COLUMNS):
        table = apply_zeropoint(table, strict=settings.strict_zeropoint)
    return table


def _centre(task: dict) -> SkyCoord:
    """The cone's centre, with its proper motion and epoch when given."""
    has_motion = all(
        np.isfinite(task.get(c, math.nan)) for c in ("pmra", "pmdec", "epoch")
    )
    if not has_motion:
        return SkyCoord(task["ra"] * u.deg, task["dec"] * u.deg)
    return SkyCoord(
        task["ra"] * u.deg,
        task["dec"] * u.deg,
        pm_ra_cosdec=task["pmra"] * u.mas / u.yr,
        pm_dec=task["pmdec"] * u.mas / u.yr,
        obstime=Time(task["epoch"], format="jyear"),
    )


def _worker_cache(folder: Path) -> str:
    """The worker processes' compilation cache: the caller's, else ``jax_cache``."""
    current = jax.config.jax_compilation_cache_dir
    return str(current or (folder / "jax_cache").resolve())


def _fit_one(
    task: dict, settings: _Settings, cache_dir: str | None = None
) -> tuple[dict, Table | None]:
    """Fetch and fit one cluster; never raises. Returns its row and members.

    ``cache_dir``, given in worker processes only, turns on JAX's persistent
    compilation cache there.
    """
    if cache_dir is not None:
        use_compilation_cache(cache_dir)
    settings = _own_settings(settings, task)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            stars = _load_stars(task, settings)
            motion = (task.get("pmra", math.nan), task.get("pmdec", math.nan))
            fit = _model(settings, task["distance"], motion).fit(
                stars,
                seed=settings.seed,
                num_warmup=settings.num_warmup,
                num_samples=settings.num_samples,
                num_chains=settings.num_chains,
                parallax_range=settings.parallax_range,
            )
        except Exception as exc:  # noqa: BLE001 - one cluster never stops a survey
            return _failed(exc, time.perf_counter() - start), None
    return _row(fit, len(stars), caught, settings, time.perf_counter() - start)


def _failed(exc: BaseException, seconds: float) -> dict:
    """The row of a cluster whose stars could not be had or fitted."""
    if isinstance(exc, GaiadistError):
        message = str(exc)
    else:  # a bug or an environment problem: keep where it happened
        where = traceback.extract_tb(exc.__traceback__)[-1:]
        place = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
        message = f"{type(exc).__name__}: {exc}{place}"
    return {"status": "failed", "message": message, "seconds": seconds}


def _row(fit, n_stars, caught, settings, seconds) -> tuple[dict, Table]:
    """The survey row of a fitted cluster.

    ``caught`` are the warnings met on the way; the gaiadist ones go into
    the message, after the fit's own convergence problems.
    """
    summary = fit.summary()
    by_name = {row["parameter"]: row for row in summary}
    rows = [by_name[k] for k in _POPULATION_ROWS if k in by_name]
    problems = fit.problems()
    notes = ["; ".join(problems)] if problems else []
    for w in caught:
        text = str(w.message)
        if (
            issubclass(w.category, GaiadistWarning)
            and "may not have converged" not in text
            and not text.startswith("no cluster:")
            and text not in notes
        ):
            notes.append(text)
    p = np.asarray(fit.table["p_member"], dtype=float)
    if not fit.detected:
        status = "no cluster"
    else:
        status = "unconverged" if problems else "ok"
    out = {
        "status": status,
        "message": " | ".join(notes),
        "model": fit.model,
        "n_stars": int(n_stars),
        "n_used": int(np.count_nonzero(np.isfinite(p))),
        "detection": math.nan if fit.detection is None else float(fit.detection),
        "D_lo": float(by_name["D"]["hdi_3%"]),
        "D_hi": float(by_name["D"]["hdi_97%"]),
        "D_stat_sd": float(by_name["D_stat"]["sd"]),
        "n_members": int(np.count_nonzero(p > settings.member_threshold)),
        "sum_p_member": float(np.nansum(p)),
        "r_hat_max": float(max(r["r_hat"] for r in rows)),
        "ess_min": float(min(min(r["ess_bulk"], r["ess_tail"]) for r in rows)),
        "divergences": int(np.count_nonzero(fit.diverging)),
        "quadrature_check": float(fit.quadrature_check),
        "seconds": float(seconds),
    }
    for k in _POPULATION_ROWS:
        row = by_name.get(k)
        out[k] = math.nan if row is None else float(row["mean"])
        out[f"{k}_sd"] = math.nan if row is None else float(row["sd"])
    return out, fit.table


# ---------------------------------------------------------------------------
# Execution modes


def _run_sequential(todo, settings, finished, **_):
    for task in todo:
        finished(task, *_fit_one(task, settings))


def _run_processes(todo, settings, finished, *, workers, cache_dir, **_):
    if not todo:
        return
    # Fresh interpreters: JAX's threads do not survive a fork.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending = {
            pool.submit(_fit_one, task, settings, cache_dir): task for task in todo
        }
        _collect(pending, as_completed, finished)


def _run_dask(todo, settings, finished, *, workers, scheduler, cache_dir, **_):
    if not todo:
        return
    with dask_client(workers, scheduler) as client:
        from distributed import as_completed as dask_completed

        pending = {
            client.submit(_fit_one, task, settings, cache_dir, pure=False): task
            for task in todo
        }
        _collect(pending, dask_completed, finished)


def _collect(pending: dict, completed, finished) -> None:
    """Hand each finished future's row on; a dead worker fails its cluster only."""
    for future in completed(list(pending)):
        try:
            row, members = future.result()
        except Exception as exc:  # noqa: BLE001 - a worker died
            row, members = _failed(exc, math.nan), None
        finished(pending[future], row, members)


def _run_batched(todo, settings, finished, *, batch_size, **_):
    # A cluster with a cut of its own is fitted alone: a batch has one cut.
    for task in todo:
        if task.get("parallax_range") is not None:
            finished(task, *_fit_one(task, settings))
    todo = [task for task in todo if task.get("parallax_range") is None]
    model = _model(settings, math.nan)
    for first in range(0, len(todo), batch_size):
        ready = []
        for task in todo[first : first + batch_size]:
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    stars = _load_stars(task, settings)
                    # the errors fit would raise
                    model._prepare(stars, None, settings.parallax_range)
                except Exception as exc:  # noqa: BLE001
                    finished(task, _failed(exc, time.perf_counter() - start), None)
                    continue
            ready.append((task, stars, list(caught)))
        if not ready:
            continue
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # Each fit's problems go into its own row through problems().
                warnings.simplefilter("ignore", GaiadistWarning)
                fits = model.fit_many(
                    [stars for _, stars, _ in ready],
                    distance_guess=[task["distance"] for task, _, _ in ready] * u.pc,
                    seed=settings.seed,
                    num_warmup=settings.num_warmup,
                    num_samples=settings.num_samples,
                    num_chains=settings.num_chains,
                    parallax_range=settings.parallax_range,
                )
        except Exception:  # noqa: BLE001 - fall back to one at a time
            for task, _, _ in ready:
                finished(task, *_fit_one(task, settings))
            continue
        seconds = (time.perf_counter() - start) / len(ready)
        for (task, stars, caught), fit in zip(ready, fits, strict=True):
            finished(task, *_row(fit, len(stars), caught, settings, seconds))


# ---------------------------------------------------------------------------
# Checkpoints and the result table


def _load_checkpoint(folder: Path, slug: str, settings: _Settings) -> dict | None:
    """A finished cluster's row, if it was fitted with these settings."""
    path = folder / "results" / f"{slug}.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("settings") != settings.key():
        return None
    row = saved.get("row", {})
    if row.get("status") == "failed":
        return None
    if row.get("members_file") and not (folder / row["members_file"]).exists():
        return None
    return row


def _save_checkpoint(folder: Path, slug: str, settings: _Settings, row: dict):
    path = folder / "results" / f"{slug}.json"
    text = json.dumps({"settings": settings.key(), "row": row}, default=str)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_atomic(table: Table, path: Path) -> None:
    """Write ``table`` to ``path`` whole or not at all."""
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    write_table(table, tmp, overwrite=True)
    os.replace(tmp, path)


def _result_table(catalogue: Table, tasks: list[dict], results: dict) -> QTable:
    out = QTable(catalogue, copy=True)
    rows = [results.get(task["slug"], {}) for task in tasks]
    for name, unit in RESULT_COLUMNS.items():
        # A catalogue's own column (a published n_stars, say) is kept as it is.
        column = f"fit_{name}" if name in catalogue.colnames else name
        values = [row.get(name) for row in rows]
        if name in ("status", "message", "model", "members_file"):
            col = np.array([v if v is not None else "" for v in values], dtype=str)
        elif name in ("n_stars", "n_used", "n_members", "divergences"):
            col = np.array([-1 if v is None else v for v in values], dtype=np.int64)
        else:
            col = np.array([math.nan if v is None else v for v in values], float)
        out[column] = col * unit if unit is not None else col
    return out
