"""`StarDistance` over many large files: `bulk_star_distances`.

The Gaia bulk download comes as thousands of files of a few hundred thousand
sources each. `bulk_star_distances` reads each file in chunks of rows
(Parquet row batches and CSV blocks are streamed; other formats are read
whole), applies the zero point where its input columns are present, computes
every star's distance and writes each chunk as one Parquet file:

    OUTPUT/STEM/part-00000.parquet, part-00001.parquet, ..., _SUCCESS

A part is written to a temporary name and renamed when complete, and
``_SUCCESS`` marks a finished input file, so an interrupted run started again
skips finished files and finished parts and redoes only the rest. Memory per
worker stays that of one chunk whatever the file sizes. The output is a
partitioned Parquet dataset with the astropy units in its metadata:
`dask.dataframe.read_parquet`, `pandas.read_parquet` and
`astropy.table.Table.read` read it.

Files run one after the other, or on Dask (a local cluster of ``workers``
processes, or a running one at ``scheduler``), one file per task.
"""

from __future__ import annotations

import glob
import math
import os
import resource
import time
import warnings
from pathlib import Path

import astropy.units as u
from astropy.table import QTable, Table

from ._dask import dask_client
from .columns import _CSV_SUFFIXES, gaia_conventions, read_gaia, write_table
from .exceptions import GaiadistError, GaiadistWarning, InputError
from .stars import StarDistance
from .zeropoint import ZEROPOINT_COLUMNS, apply_zeropoint

__all__ = ["bulk_star_distances"]

_DONE = "_SUCCESS"


def bulk_star_distances(
    inputs: str | os.PathLike | list,
    output: str | os.PathLike,
    *,
    model: StarDistance | None = None,
    zeropoint: bool = True,
    strict_zeropoint: bool = False,
    columns: list[str] | None = None,
    chunk_rows: int = 200_000,
    workers: int = 1,
    scheduler=None,
    progress: bool | None = None,
) -> QTable:
    """Posterior distances of every star in many files, written as Parquet.

    Parameters
    ----------
    inputs : str, path or list
        A glob pattern (``"GaiaSource_*.csv.gz"``), a folder (every file in
        it), or a list of files: Parquet and CSV (also compressed) are
        streamed in chunks; FITS, VOTable and ECSV files are read whole.
    output : path
        Folder of the results, one subfolder per input file.
    model : `~gaiadist.StarDistance`, optional
        The prior and its settings; by default ``StarDistance()`` (EDSD,
        L = 1.35 kpc). A length scale given as a column name is read from
        each chunk.
    zeropoint : bool, optional
        Apply the Lindegren et al. (2021) zero point (`~gaiadist.apply_zeropoint`)
        where its input columns are present. ``prior="bj21"`` needs it (a
        file's own ``parallax_corrected`` column is used as it is).
    strict_zeropoint : bool, optional
        Correct only the sources inside the zero point's calibration, as
        ``apply_zeropoint(strict=True)`` does; the others get NaN distances.
    columns : list of str, optional
        Input columns to keep in the output, in the given order; by default
        every column. The distance columns (and the zero point's) are added.
    chunk_rows : int, optional
        Rows per chunk and per output part.
    workers : int, optional
        More than 1 starts a `distributed.LocalCluster` of that many
        processes.
    scheduler : str or `distributed.Client`, optional
        A running Dask cluster to use instead.
    progress : bool or None, optional
        A progress bar over the files; ``None`` shows it only on a terminal.

    Returns
    -------
    `~astropy.table.QTable`
        One row per input file: ``input``, ``output``, ``rows``, ``parts``,
        ``status`` (``"done"``, ``"skipped"`` when a previous run finished it,
        or ``"failed"``), ``message``, ``seconds`` and ``peak_memory`` (the
        worker process's peak resident memory, MiB).

    Raises
    ------
    InputError
        If ``inputs`` names no file or an argument is invalid. A file that
        cannot be read or processed is a ``"failed"`` row; the others go on.
    """
    files = _input_files(inputs)
    if int(chunk_rows) < 1 or int(workers) < 1:
        raise InputError("chunk_rows and workers must be positive")
    model = StarDistance() if model is None else model
    if not isinstance(model, StarDistance):
        raise InputError("model must be a gaiadist.StarDistance")
    if model.prior == "bj21" and not zeropoint:
        raise InputError(
            "prior='bj21' applies Bailer-Jones et al.'s zero point itself; to "
            "use another, give the files a parallax_corrected column"
        )
    folder = Path(output)
    targets = [folder / _stem(path) for path in files]
    if len({t.name for t in targets}) != len(targets):
        raise InputError("input files must have different names")
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "model": model,
        "zeropoint": bool(zeropoint),
        "strict_zeropoint": bool(strict_zeropoint),
        "columns": None if columns is None else list(columns),
        "chunk_rows": int(chunk_rows),
    }
    jobs = list(zip(map(str, files), map(str, targets), strict=True))
    from tqdm import tqdm

    bar = tqdm(
        total=len(jobs),
        desc="files",
        unit="file",
        disable=None if progress is None else not progress,
    )
    rows = {}
    try:
        if scheduler is None and int(workers) == 1:
            for source, target in jobs:
                rows[source] = _process_file(source, target, settings)
                bar.update(1)
        else:
            for source, row in _on_dask(jobs, settings, int(workers), scheduler):
                rows[source] = row
                bar.update(1)
    finally:
        bar.close()
    out = QTable(rows=[rows[source] for source, _ in jobs], names=_SUMMARY)
    out["seconds"].unit = u.s
    out["peak_memory"].unit = u.MiB
    return out


_SUMMARY = (
    "input",
    "output",
    "rows",
    "parts",
    "status",
    "message",
    "seconds",
    "peak_memory",
)


def _input_files(inputs) -> list[Path]:
    if isinstance(inputs, str | os.PathLike) and Path(inputs).is_dir():
        files = sorted(p for p in Path(inputs).iterdir() if p.is_file())
    elif isinstance(inputs, str):
        files = sorted(Path(p) for p in glob.glob(inputs))
    elif isinstance(inputs, os.PathLike):
        files = [Path(inputs)]
    else:
        files = [Path(p) for p in inputs]
    if not files:
        raise InputError(f"no input files match {inputs!r}")
    return files


def _stem(path: Path) -> str:
    """The file name without its (possibly double) extension."""
    name = path.name
    for suffix in (*_CSV_SUFFIXES, ".parquet", ".fits.gz", ".fits", ".ecsv"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _on_dask(jobs, settings, workers, scheduler):
    """Yield ``(input, row)`` as Dask workers finish the files."""
    with dask_client(workers, scheduler) as client:
        from distributed import as_completed

        futures = {
            client.submit(_process_file, source, target, settings, pure=False): source
            for source, target in jobs
        }
        for future in as_completed(list(futures)):
            source = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker died
                row = _row(source, "", 0, 0, "failed", str(exc), math.nan)
            yield source, row


def _process_file(source: str, target: str, settings: dict) -> tuple:
    """Distances for one input file, chunk by chunk; never raises."""
    start = time.perf_counter()
    target = Path(target)
    if (target / _DONE).exists():
        parts = sorted(target.glob("part-*.parquet"))
        rows = int((target / _DONE).read_text() or 0)
        return _row(source, target, rows, len(parts), "skipped", "", 0.0)
    target.mkdir(parents=True, exist_ok=True)
    rows = 0
    part = -1
    try:
        with warnings.catch_warnings():
            # One file's flagged rows and zero point validity would repeat for
            # every chunk; the columns (r_flag, zpt_valid) say it per star.
            warnings.simplefilter("ignore", GaiadistWarning)
            for part, chunk in enumerate(_chunks(source, settings["chunk_rows"])):
                path = target / f"part-{part:05d}.parquet"
                rows += len(chunk)
                if path.exists():  # finished by an interrupted run
                    continue
                _write_part(_distances(chunk, settings), path)
    except Exception as exc:  # noqa: BLE001 - one bad file never stops the rest
        message = str(exc) if isinstance(exc, GaiadistError) else repr(exc)
        seconds = time.perf_counter() - start
        return _row(source, target, rows, part + 1, "failed", message, seconds)
    (target / _DONE).write_text(str(rows))
    seconds = time.perf_counter() - start
    return _row(source, target, rows, part + 1, "done", "", seconds)


def _row(source, target, rows, parts, status, message, seconds):
    """A summary row; ``peak_memory`` is this (worker) process's peak so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (source, str(target), rows, parts, status, message, seconds, peak)


def _chunks(source: str, size: int):
    """The file's rows, ``size`` at a time, in gaiadist's column conventions."""
    lower = source.lower()
    if lower.endswith((".parquet", ".parq")):
        import pyarrow.parquet as pq

        with pq.ParquetFile(source) as handle:
            for batch in handle.iter_batches(batch_size=size):
                yield gaia_conventions(Table.from_pandas(batch.to_pandas()), source)
    elif lower.endswith(_CSV_SUFFIXES):
        import pandas as pd

        with pd.read_csv(source, chunksize=size, comment="#") as reader:
            for frame in reader:
                yield gaia_conventions(Table.from_pandas(frame), source)
    else:
        table = read_gaia(source)
        for first in range(0, len(table), size):
            yield table[first : first + size]


def _distances(chunk: QTable, settings: dict) -> QTable:
    """The chunk with the zero point (where possible) and the distances added."""
    original = list(chunk.colnames)
    if settings["zeropoint"] and all(c in original for c in ZEROPOINT_COLUMNS):
        chunk = apply_zeropoint(chunk, strict=settings["strict_zeropoint"])
    out = settings["model"].fit(chunk)
    if settings["columns"] is not None:
        missing = [c for c in settings["columns"] if c not in original]
        if missing:
            raise InputError(f"no column {', '.join(missing)} in the input")
        added = [c for c in out.colnames if c not in original]
        out = out[list(dict.fromkeys(settings["columns"] + added))]
    return out


def _write_part(table: QTable, path: Path) -> None:
    """Write one part whole or not at all."""
    # Names starting with "_" are left out when the folder is read as a dataset.
    tmp = path.with_name("_tmp-" + path.name)
    write_table(table, tmp, overwrite=True)
    os.replace(tmp, path)
