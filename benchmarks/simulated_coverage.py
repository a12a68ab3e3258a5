"""Coverage and membership of the astrometric cluster model on simulated fields.

Usage: python benchmarks/simulated_coverage.py [--n 24] [--stars 2000] [--seed 0]
       [--offset]

Simulates --n fields (`gaiadist.simulate.cluster_field`, every star kept, no
parallax cut): cluster distances log-uniform in 250-4000 pc, field fractions
uniform in 50-95 %, r50 2-6 pc, velocity dispersions 0.5-2 km/s, the
cluster's proper motion 0-2 field widths from the field's main Gaussian.
Fits each with `ClusterDistance` (default settings) and prints, per field and
in all, how often the truth of D, r50, pmra, pmdec, dispersion, Q and L lies
inside the 94 % highest-density interval, and the area under the ROC curve of
p_member beside that of the membership computed with the true parameters.

With --offset every field's parallaxes share an offset drawn from the
default systematic's prior (`gaiadist.systematics.PARALLAX_SYSTEMATIC`), and
the coverage of D (total uncertainty) is printed beside that of D_stat.
"""

import argparse
import time
import warnings

import astropy.units as u
import jax
import numpy as np
from scipy import stats

from gaiadist import ClusterDistance, apply_zeropoint
from gaiadist.astrometric import astrometric_stars, footprint_of, membership
from gaiadist.simulate import FIELD_MOTION, cluster_field, true_parameters
from gaiadist.systematics import PARALLAX_SYSTEMATIC

NAMES = ("D", "r50", "pmra", "pmdec", "dispersion", "Q", "L", "D_stat")


def auc(score, truth) -> float:
    ranks = stats.rankdata(score)
    n1 = truth.sum()
    return float((ranks[truth].sum() - n1 * (n1 + 1) / 2) / (n1 * (~truth).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--stars", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offset", action="store_true")
    args = parser.parse_args()
    sigma = PARALLAX_SYSTEMATIC.to_value(u.mas)
    rng = np.random.default_rng(args.seed)
    model = ClusterDistance()
    inside = {k: [] for k in NAMES}
    gaps, warned, seconds = [], 0, 0.0
    main_field = np.asarray(FIELD_MOTION[0][1:3])
    width = FIELD_MOTION[0][3]
    print(f"{'D':>6s} {'f_field':>7s} {'Q_fit':>6s} {'AUC fit':>8s} {'truth':>7s} out")
    for i in range(args.n):
        d = float(np.exp(rng.uniform(np.log(250), np.log(4000))))
        field = rng.uniform(0.5, 0.95)
        angle = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(0, 2) * width * np.array([np.cos(angle), np.sin(angle)])
        stars = cluster_field(
            args.stars,
            distance=d * u.pc,
            size=rng.uniform(1, 5) * u.pc,
            fraction=1 - field,
            length_scale=rng.uniform(400, 1200) * u.pc,
            r50=rng.uniform(2, 6) * u.pc,
            proper_motion=(main_field + offset) * u.mas / u.yr,
            velocity_dispersion=rng.uniform(0.5, 2) * u.km / u.s,
            seed=1000 + i,
        )
        if args.offset:
            stars["parallax"] += rng.normal(0, sigma) * u.mas
        stars = apply_zeropoint(stars)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = model.fit(stars, seed=i)
        seconds += time.perf_counter() - start
        warned += any("may not have converged" in str(w.message) for w in caught)
        truth = stars.meta["truth"]
        want = dict(truth, dispersion=truth["velocity_dispersion"], D_stat=truth["D"])
        summary = {r["parameter"]: r for r in fit.summary()}
        missed = []
        for k in NAMES:
            ok = summary[k]["hdi_3%"] <= want[k] <= summary[k]["hdi_97%"]
            inside[k].append(ok)
            if not ok:
                missed.append(k)
        used = np.asarray(fit.table["r_flag"]) == 0
        member = np.asarray(stars["true_member"])[used]
        data, _ = astrometric_stars(fit.table[used], footprint_of(fit.table))
        with jax.enable_x64(True):
            best = np.asarray(membership(true_parameters(truth), data)[0])
        a_fit = auc(np.asarray(fit.table["p_member"])[used], member)
        a_truth = auc(best, member)
        gaps.append(a_truth - a_fit)
        print(
            f"{d:6.0f} {field:7.2f} {summary['Q']['mean']:6.3f} {a_fit:8.4f} "
            f"{a_truth:7.4f} {','.join(missed)}",
            flush=True,
        )
    total = sum(sum(v) for v in inside.values())
    count = sum(len(v) for v in inside.values())
    print("\ncoverage of the 94 % intervals:")
    for k, v in inside.items():
        print(f"  {k:10s} {np.mean(v):.0%}")
    print(f"  all        {total / count:.1%} ({total}/{count})")
    print(
        f"AUC truth - fit: median {np.median(gaps):.4f}, max {np.max(gaps):.4f}; "
        f"{np.mean(np.asarray(gaps) <= 0.005):.0%} within 0.005"
    )
    print(f"fits that warned: {warned}/{args.n}; {seconds:.0f} s of fitting")


if __name__ == "__main__":
    main()
