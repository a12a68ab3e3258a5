"""Clusters per minute of gaiadist.survey, in each execution mode.

Usage: python benchmarks/bench_survey.py [--n 100] [--min-stars 800]
       [--max-stars 3000] [--modes sequential,processes:1,processes:2,dask:2]

A mode is ``sequential``, ``processes:W`` or ``dask:W`` (W worker processes),
or ``batched:B`` (B clusters per compiled program, `ClusterDistance.fit_many`;
meant for a GPU).

Simulates --n clusters (distances 200-2500 pc, sizes 2-15 pc, 15-45 %
members, star counts log-uniform between --min-stars and --max-stars, so
that they fall in several of ClusterDistance's padded size classes), writes
one star file per cluster, and runs the whole survey once per mode, each in a
fresh output folder (so no mode profits from another's checkpoints or
compilation cache). Prints, per mode: wall time, clusters per minute,
failures, clusters whose truth lies outside the 94 % interval of D, and the
speed-up over one worker.
"""

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from gaiadist import survey
from gaiadist.marginal import padded_size
from gaiadist.simulate import cluster_field


def catalogue(n, lo, hi, folder, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        stars = int(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        distance = float(np.exp(rng.uniform(np.log(200), np.log(2500))))
        size = float(rng.uniform(2, 15))
        fraction = float(rng.uniform(0.15, 0.45))
        field = cluster_field(
            stars,
            distance=distance * u.pc,
            size=size * u.pc,
            fraction=fraction,
            seed=1000 + i,
        )
        field.meta.clear()
        path = folder / f"c{i:03d}.fits"
        field.write(path)
        rows.append((f"c{i:03d}", str(path), stars, distance))
    names, files, counts, distances = zip(*rows, strict=True)
    return Table(
        {"name": names, "file": files, "n": counts, "true_D": distances * u.pc}
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--min-stars", type=int, default=800)
    parser.add_argument("--max-stars", type=int, default=3000)
    parser.add_argument("--modes", default="sequential,processes:1,processes:2,dask:2")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "stars").mkdir()
        cat = catalogue(args.n, args.min_stars, args.max_stars, tmp / "stars")
        classes = sorted({padded_size(int(n)) for n in cat["n"]})
        print(
            f"{args.n} clusters, {int(np.sum(cat['n']))} stars, "
            f"{len(classes)} padded size classes ({classes[0]}-{classes[-1]})"
        )
        base = None
        for spec in args.modes.split(","):
            mode, _, workers = spec.partition(":")
            number = int(workers or 1)
            size = {"batch_size": number} if mode == "batched" else {"workers": number}
            start = time.perf_counter()
            out = survey(cat, tmp / f"out_{mode}_{number}", mode=mode, **size)
            wall = time.perf_counter() - start
            ok = out["status"] != "failed"
            outside = np.count_nonzero(
                ok & ((out["true_D"] < out["D_lo"]) | (out["true_D"] > out["D_hi"]))
            )
            rate = args.n / wall * 60
            if base is None:
                base = rate
            print(
                f"{spec:>14}: {wall:7.1f} s  {rate:6.2f} clusters/min  "
                f"x{rate / base:4.2f}  failed {np.count_nonzero(~ok)}  "
                f"unconverged {np.count_nonzero(out['status'] == 'unconverged')}  "
                f"D truth outside 94% HDI {outside}",
                flush=True,
            )


if __name__ == "__main__":
    main()
