"""Throughput and memory of StarDistance, table in to table out.

Usage: python benchmarks/bench_star_distance.py [--n 1000000] [--chunk-size 8192]
       [--prior edsd|bj21]

Builds a Gaia-like table (int64 source_id, parallax_corrected and
parallax_error in mas; errors log-uniform 0.01-2 mas, parallaxes around
0.5 mas with negative ones included), runs StarDistance once on a small
table to compile, then times the fit of the whole table and reports stars per
second and the peak resident memory above what the input table already used.

To compare machines, it also reports the cost per star in units of this
machine's own exp throughput, measured in the same run: the best time of a
jitted float32 ``jnp.sum(jnp.exp(x))`` over 2**22 values (in [-10, 10]), the
same precision and vectorisation as the kernel's. "exp-equivalents per star" is
the kernel's time per star divided by the time of one such exp; it is given
for the whole fit and for the compiled kernel alone on one chunk.
"""

import argparse
import resource
import time

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table

from gaiadist import StarDistance
from gaiadist.posterior import SIGMA_PROBS, _quantiles_kernel


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_seconds(fn, *args, repeat: int = 50) -> float:
    """Best wall time of ``fn(*args)`` (its result waited for), after a warm-up."""
    jax.block_until_ready(fn(*args))
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def exp_seconds() -> float:
    """Seconds per float32 exp on this machine: jitted, vectorised, summed.

    ``sum(exp(x))`` over 2**22 values: no output array to write, so it
    measures the exp itself (stable to a few per cent between runs, where
    an exp written to memory varies by 50 %).
    """
    x = jnp.asarray(np.random.default_rng(0).uniform(-10, 10, 1 << 22), jnp.float32)
    fn = jax.jit(lambda v: jnp.sum(jnp.exp(v)))
    return best_seconds(fn, x, repeat=50) / x.size


def kernel_seconds(table: Table, chunk: int) -> float:
    """Best time of the compiled quadrature kernel on one chunk of ``table``."""
    args = [
        np.asarray(table[c][:chunk], np.float32)
        for c in ("parallax_corrected", "parallax_error")
    ]
    fixed = [np.full(chunk, v, np.float32) for v in (1.0, 2.0, 1350.0)]
    probs = jnp.asarray(SIGMA_PROBS)
    return best_seconds(_quantiles_kernel, *args, *fixed, probs, repeat=20) / chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--prior", choices=["edsd", "bj21"], default="edsd")
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
    if args.prior == "bj21":
        model = StarDistance(prior="bj21", chunk_size=args.chunk_size)
    else:
        model = StarDistance(length_scale=1.35 * u.kpc, chunk_size=args.chunk_size)
    # Compile once, for the chunk size the timed fit uses (smaller inputs are
    # padded to a power of two, with a program of their own).
    model.fit(table[: min(args.chunk_size, args.n)])
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
    per_exp = exp_seconds()
    kernel = kernel_seconds(table, min(args.chunk_size, args.n))
    print(f"exp throughput   : {1 / per_exp / 1e9:.2f} G float32 exp/s (this machine)")
    print(
        f"cost per star    : {elapsed / args.n / per_exp:,.0f} exp-equivalents "
        f"(whole fit), {kernel / per_exp:,.0f} (kernel alone, "
        f"{1 / kernel:,.0f} stars/s)"
    )
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
