"""Throughput and memory of StarDistance, table in to table out.

Usage: python benchmarks/bench_star_distance.py [--n 1000000] [--chunk-size 8192]

Builds a Gaia-like table (int64 source_id, parallax_corrected and
parallax_error in mas; errors log-uniform 0.01-2 mas, parallaxes around
0.5 mas with negative ones included), runs StarDistance once on a small
table to compile, then times the fit of the whole table and reports stars per
second and the peak resident memory above what the input table already used.
"""

import argparse
import resource
import time

import astropy.units as u
import jax
import numpy as np
from astropy.table import Table

from gaiadist import StarDistance


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=8192)
    args = parser.parse_args()

    rng = np.random.default_rng(42)
    err = 10 ** rng.uniform(-2, np.log10(2), args.n)
    true_plx = 1000 / rng.gamma(3, 1350 / 1, args.n).clip(10)
    table = Table(
        {
            "source_id": rng.integers(0, 2**62, args.n, dtype=np.int64),
            "parallax_corrected": (true_plx + err * rng.standard_normal(args.n))
            * u.mas,
            "parallax_error": err * u.mas,
        }
    )
    model = StarDistance(length_scale=1.35 * u.kpc, chunk_size=args.chunk_size)
    model.fit(table[:1000])  # compile once
    base_rss = rss_mib()
    start_peak = peak_mib()

    t0 = time.perf_counter()
    out = model.fit(table)
    elapsed = time.perf_counter() - t0

    extra_peak = max(peak_mib(), start_peak) - base_rss
    print(f"device           : {jax.devices()[0].platform} ({jax.device_count()})")
    print(f"stars            : {args.n:,}  (chunk size {args.chunk_size})")
    print(f"wall time        : {elapsed:.2f} s")
    print(f"throughput       : {args.n / elapsed:,.0f} stars/s")
    print(
        f"table size       : {table.as_array().nbytes / 2**20:.0f} MiB in, "
        f"{out.as_array().nbytes / 2**20:.0f} MiB out"
    )
    print(
        f"peak RSS above the input table: {extra_peak:.0f} MiB "
        "(includes the output table)"
    )
    print(f"flagged rows     : {int(np.count_nonzero(out['r_flag']))}")


if __name__ == "__main__":
    main()
