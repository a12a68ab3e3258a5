"""Throughput and memory of bulk_star_distances on partitioned Parquet files.

Usage: python benchmarks/bench_bulk.py [--n 10000000] [--files 20]
       [--chunk-rows 200000] [--workers 1,2]

Writes --n synthetic Gaia-like rows (int64 source_id, parallax_corrected and
parallax_error in mas, errors log-uniform 0.01-2 mas, parallaxes from an
EDSD population at L = 1.35 kpc, negative ones included) into --files
Parquet files, then runs bulk_star_distances once per entry of --workers (1:
in this process; more: a Dask LocalCluster of that many processes), each
into a fresh output folder. Prints rows per second and the largest peak
resident memory of any process that did the work.
"""

import argparse
import tempfile
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from gaiadist import bulk_star_distances


def write_inputs(folder: Path, n: int, files: int) -> None:
    rng = np.random.default_rng(42)
    for i, rows in enumerate(np.diff(np.linspace(0, n, files + 1).astype(int))):
        err = 10 ** rng.uniform(-2, np.log10(2), rows)
        true_plx = 1000 / rng.gamma(3, 1350, rows).clip(10)
        Table(
            {
                "source_id": rng.integers(0, 2**62, rows, dtype=np.int64),
                "parallax_corrected": (true_plx + err * rng.standard_normal(rows))
                * u.mas,
                "parallax_error": err * u.mas,
            }
        ).write(folder / f"GaiaSource_{i:04d}.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        start = time.perf_counter()
        write_inputs(tmp / "in", args.n, args.files)
        size = sum(p.stat().st_size for p in (tmp / "in").iterdir()) / 2**20
        print(
            f"{args.n:,} rows in {args.files} Parquet files ({size:.0f} MiB), "
            f"written in {time.perf_counter() - start:.1f} s; "
            f"chunks of {args.chunk_rows:,} rows"
        )
        for workers in map(int, args.workers.split(",")):
            start = time.perf_counter()
            out = bulk_star_distances(
                str(tmp / "in" / "*.parquet"),
                tmp / f"out_{workers}",
                chunk_rows=args.chunk_rows,
                workers=workers,
            )
            wall = time.perf_counter() - start
            rows = int(np.sum(out["rows"]))
            assert np.all(out["status"] == "done"), out["message"]
            print(
                f"workers {workers}: {wall:7.1f} s  {rows / wall:10,.0f} rows/s  "
                f"peak memory per worker {np.max(out['peak_memory'].value):.0f} MiB",
                flush=True,
            )


if __name__ == "__main__":
    main()
