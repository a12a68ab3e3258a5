"""Speed of ClusterDistance on M67: the marginal method against the latent one.

Usage: python benchmarks/bench_cluster.py [--data PATH] [--latent-warmup 2000]
       [--latent-samples 4000] [--skip-latent] [--skip-processes]

Reads ../shared/data/m67_gaiadr3.fits.gz (the tutorial's cut 0.2 < parallax
< 3 mas, zero point applied), then in one process:

1. fits the marginal method twice with one `ClusterDistance` (the first fit
   includes compilation, the second reuses it), with the default settings;
2. fits it once in each of two new processes sharing an empty persistent
   compilation cache (`gaiadist.use_compilation_cache`): the first compiles
   and stores the programs, the second loads them, as a second run of the
   ``gaiadist`` command does;
3. fits the latent method (the tutorial's model, 2 chains, by default the
   tutorial's 2000 warmup and 4000 draws per chain).

For each fit it prints the wall time (the whole `fit` call: sampling and the
per-star results), the bulk and tail ESS of every parameter, and the ESS per
second of the weakest of D, approx_size, L and Q (the smaller of bulk and
tail), and at the end the ratio of the marginal to the latent ESS/s.
"""

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import astropy.units as u
import jax
import numpy as np
from astropy.table import Table

from gaiadist import (
    ClusterDistance,
    GaiadistWarning,
    apply_zeropoint,
    use_compilation_cache,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "m67_gaiadr3.fits.gz"
KEY = ("D", "approx_size", "L", "Q")


def load(path: Path) -> Table:
    stars = Table.read(path)
    plx = stars["parallax"].quantity.to_value(u.mas)
    stars = stars[(plx > 0.2) & (plx < 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GaiadistWarning)
        return apply_zeropoint(stars)


def timed_fit(label: str, model: ClusterDistance, stars: Table, **kwargs) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GaiadistWarning)
        fit = model.fit(stars, **kwargs)
    wall = time.perf_counter() - start
    summary = fit.summary()
    print(f"\n{label}: {wall:.1f} s wall ({fit.seconds:.1f} s until the draws)")
    for w in caught:
        print(f"  warning: {w.message}")
    head = ("parameter", "mean", "sd", "ess_bulk", "ess_tail")
    print("  {:12s} {:>10s} {:>8s} {:>9s} {:>9s}".format(*head))
    weakest = np.inf
    for row in summary:
        print(
            f"  {row['parameter']:12s} {row['mean']:10.4g} {row['sd']:8.3g} "
            f"{row['ess_bulk']:9.0f} {row['ess_tail']:9.0f}"
        )
        if row["parameter"] in KEY:
            weakest = min(weakest, row["ess_bulk"], row["ess_tail"])
    rate = weakest / wall
    print(f"  weakest ESS of {', '.join(KEY)}: {weakest:.0f} -> {rate:.1f} per second")
    print(f"  sum of p_member: {np.nansum(fit.table['p_member']):.1f}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--latent-warmup", type=int, default=2000)
    parser.add_argument("--latent-samples", type=int, default=4000)
    parser.add_argument("--skip-latent", action="store_true")
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"no data at {args.data}; pass --data")
    if args.cache is not None:  # one fit in a new process (step 2)
        use_compilation_cache(args.cache)
        state = "filled" if any(args.cache.iterdir()) else "empty"
        timed_fit(
            f"marginal, new process, {state} cache",
            ClusterDistance(),
            load(args.data),
            seed=0,
        )
        return
    stars = load(args.data)
    print(f"{len(stars)} stars; JAX on {jax.devices()[0].platform}")
    model = ClusterDistance()
    timed_fit("marginal, first fit (compiles)", model, stars, seed=0)
    marginal = timed_fit("marginal, second fit", model, stars, seed=1)
    if not args.skip_processes:
        with tempfile.TemporaryDirectory() as cache:
            for _ in range(2):
                command = [sys.executable, __file__, "--data", str(args.data)]
                subprocess.run([*command, "--cache", cache], check=True)
    if args.skip_latent:
        return
    latent = timed_fit(
        f"latent ({args.latent_warmup} + {args.latent_samples} per chain)",
        ClusterDistance("latent"),
        stars,
        seed=2,
        num_warmup=args.latent_warmup,
        num_samples=args.latent_samples,
    )
    print(f"\nmarginal / latent ESS per second: {marginal / latent:.0f}x")


if __name__ == "__main__":
    main()
