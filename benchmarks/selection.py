"""Fits of a cut field against the whole field, with and without the cut's term.

Usage: python benchmarks/selection.py [--model astrometric|parallax]
       [--stars 2000] [--seed 4] [--cut 0.2,3] [--fraction 0.4]

Simulates an M67-like cone (`gaiadist.simulate.cluster_field`: cluster at
840 pc, approx_size 10 pc, field EDSD L = 800 pc, the Lindegren zero point
added and corrected) and fits it three times with 2 chains of 300 + 300
draws: the whole field; the stars inside the parallax cut with the cut in
the likelihood (`gaiadist.selection`); and the same stars as if they were
the whole field (``selection=False``, the tutorial's treatment). Prints
for each fit D, Q and L (mean and sd), the summed memberships of the stars
inside the cut with the true count, the detection statistic and the wall
time (the first fit of each kind compiles its programs).
"""

import argparse
import time
import warnings

import astropy.units as u
import numpy as np

from gaiadist import ClusterDistance, apply_zeropoint
from gaiadist.simulate import cluster_field


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="astrometric")
    parser.add_argument("--stars", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--cut", default="0.2,3")
    parser.add_argument("--fraction", type=float, default=0.4)
    args = parser.parse_args()
    lo, hi = (float(v) for v in args.cut.split(","))
    stars = apply_zeropoint(
        cluster_field(
            args.stars,
            distance=840 * u.pc,
            size=10 * u.pc,
            fraction=args.fraction,
            length_scale=800 * u.pc,
            seed=args.seed,
        )
    )
    plx = stars["parallax"].to_value(u.mas)
    inside = (plx > lo) & (plx < hi)
    member = np.asarray(stars["true_member"])
    print(
        f"{args.model} model; {len(stars)} stars, {member.sum()} members "
        f"(Q = {member.mean():.3f}), L = 800 pc; {inside.sum()} stars and "
        f"{member[inside].sum()} members inside {lo:g} < parallax < {hi:g} mas"
    )
    print(
        f"{'fit':6s} {'D':>14s} {'Q':>14s} {'L':>12s} {'sum p in cut':>12s} "
        f"{'nats':>7s} {'wall s':>6s}"
    )
    for label, cut, selection in (
        ("whole", None, True),
        ("cut", (lo, hi), True),
        ("naive", (lo, hi), False),
    ):
        model = ClusterDistance(
            model=args.model, selection=selection, parallax_systematic=None
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = model.fit(
                stars, parallax_range=cut, seed=1, num_warmup=300, num_samples=300
            )
        wall = time.perf_counter() - start
        rows = {str(r["parameter"]): r for r in fit.summary()}
        cells = [
            f"{rows[k]['mean']:{f}} ± {rows[k]['sd']:<{f}}"
            for k, f in (("D", ".1f"), ("Q", ".3f"), ("L", ".0f"))
        ]
        kept = np.nansum(np.asarray(fit.table["p_member"])[inside])
        print(
            f"{label:6s} {cells[0]:>14s} {cells[1]:>14s} {cells[2]:>12s} "
            f"{kept:12.1f} {fit.detection:7.1f} {wall:6.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
