"""Accuracy of the star kernel against a brute-force posterior.

Usage: python benchmarks/star_accuracy.py   (from the repository root)

Three stars per HEALPix level-5 pixel of the Bailer-Jones et al. (2021)
prior table (36,864: parallax over error log-uniform in 0.1-1000, a fifth
negative, errors 0.01-2 mas) and 8,192 stars under the EDSD prior
(L = 1.35 kpc; parallax over error 0.03-1000, 30 % negative). Each star's
r_lo, r_med and r_hi from `distance_quantiles` are compared with
``tests/reference.py``'s dense float64 brute force (about two minutes on 2 cores).
Prints the largest relative error and its star, and the 99.9th percentile.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gaiadist.bj21 import bj21_prior_table  # noqa: E402
from gaiadist.posterior import distance_quantiles  # noqa: E402
from tests.reference import brute_force_quantiles_many  # noqa: E402


def stars(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Parallax, error, alpha, beta and length scale of every test star."""
    table = bj21_prior_table()
    alpha, beta, length = (
        np.tile(np.asarray(table[c], float), 3)
        for c in ("GGDalpha", "GGDbeta", "GGDrlen")
    )
    n = alpha.size
    snr = 10 ** rng.uniform(-1, 3, n)
    snr[rng.random(n) < 0.2] *= -1
    err = 10 ** rng.uniform(-2, 0.3, n)
    m = 8192
    edsd_snr = 10 ** rng.uniform(-1.5, 3, m)
    edsd_snr[rng.random(m) < 0.3] *= -1
    edsd_err = 10 ** rng.uniform(-2, 0.3, m)
    snr, err = np.r_[snr, edsd_snr], np.r_[err, edsd_err]
    alpha = np.r_[alpha, np.ones(m)]
    beta = np.r_[beta, np.full(m, 2.0)]
    length = np.r_[length, np.full(m, 1350.0)]
    return snr * err, err, alpha, beta, length


def main() -> None:
    plx, err, alpha, beta, length = stars(np.random.default_rng(7))
    start = time.perf_counter()
    ref = brute_force_quantiles_many(plx, err, alpha, beta, length)
    brute = time.perf_counter() - start
    got = distance_quantiles(plx, err, alpha=alpha, beta=beta, length_scale=length)
    rel = np.abs(got / ref - 1).max(axis=1)
    worst = int(np.argmax(rel))
    print(f"stars                : {plx.size:,}  (brute force {brute:.0f} s)")
    print(f"largest relative err : {rel[worst]:.2e}  (r_lo, r_med, r_hi)")
    print(
        f"  at star {worst}: parallax {plx[worst]:.4g} mas, error {err[worst]:.3g},"
        f" alpha {alpha[worst]:.3g}, beta {beta[worst]:.3g}, L {length[worst]:.3g} pc"
    )
    print(f"99.9th percentile    : {np.quantile(rel, 0.999):.2e}")


if __name__ == "__main__":
    main()
