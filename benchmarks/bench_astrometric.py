"""Speed of the astrometric cluster model against the number of stars.

Usage: python benchmarks/bench_astrometric.py [--sizes 3000,10000,30000]
       [--fraction 0.05] [--cut 0.2,3]

For each size, simulates a 1 deg cone (`gaiadist.simulate.cluster_field`: a
cluster at 1.5 kpc holding --fraction of the stars, the rest field) and fits
it twice with one `ClusterDistance` (default settings: 2 chains of 300 + 1000
draws): the first fit compiles the programs for that size, the second reuses
them. Prints, per fit, the wall time of ``fit`` (mode search, sampling and
per-star results), the stars per second, the smallest bulk or tail ESS of the
summary's parameters and that ESS per second. With ``--cut lo,hi`` the fit
is of the stars inside that parallax range (mas), with the cut in the
likelihood (`gaiadist.selection`); the sizes are then those before the cut.
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
    parser.add_argument("--sizes", default="3000,10000,30000")
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--cut", default="")
    args = parser.parse_args()
    cut = tuple(float(v) for v in args.cut.split(",")) if args.cut else None
    print(
        f"{'stars':>6s} {'fit':>6s} {'wall s':>7s} {'stars/s':>8s} "
        f"{'min ESS':>7s} {'ESS/s':>6s} problems"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        stars = apply_zeropoint(
            cluster_field(
                n,
                distance=1500 * u.pc,
                size=3 * u.pc,
                fraction=args.fraction,
                length_scale=800 * u.pc,
                radius=1.0 * u.deg,
                seed=1,
            )
        )
        model = ClusterDistance()
        for label in ("first", "second"):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = model.fit(
                    stars, seed=0 if label == "first" else 1, parallax_range=cut
                )
            wall = time.perf_counter() - start
            summary = fit.summary()
            ess = int(np.min(np.minimum(summary["ess_bulk"], summary["ess_tail"])))
            print(
                f"{n:6d} {label:>6s} {wall:7.1f} {n / wall:8.0f} {ess:7d} "
                f"{ess / wall:6.1f} {'; '.join(fit.problems())}",
                flush=True,
            )


if __name__ == "__main__":
    main()
