"""The ``gaiadist`` command."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import astropy.units as u
import numpy as np

from .columns import read_table
from .exceptions import GaiadistError
from .stars import StarDistance
from .zeropoint import ZEROPOINT_COLUMNS, apply_zeropoint

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``gaiadist`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="gaiadist", description="Distances from Gaia DR3 parallaxes."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    stars = sub.add_parser(
        "stars",
        help="posterior distance of every star in a table",
        description=(
            "Read a Gaia table, apply the Lindegren et al. (2021) zero point when "
            "its inputs are present, and add r_med, r_lo, r_hi (pc) and r_flag."
        ),
    )
    stars.add_argument("input", help="table file (FITS, VOTable, ECSV, CSV, ...)")
    stars.add_argument(
        "-o", "--output", help="output file (default: INPUT stem + _distances.ecsv)"
    )
    stars.add_argument("--prior", choices=["edsd", "ggd"], default="edsd")
    stars.add_argument(
        "--length-scale",
        default="1.35 kpc",
        help="prior length scale with a unit, or a column name (default: 1.35 kpc)",
    )
    stars.add_argument("--alpha", type=float, help="generalised gamma alpha")
    stars.add_argument("--beta", type=float, help="generalised gamma beta")
    stars.add_argument(
        "--no-zeropoint", action="store_true", help="do not apply the zero point"
    )
    stars.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file"
    )
    args = parser.parse_args(argv)
    try:
        return _stars(args)
    except GaiadistError as exc:
        print(f"gaiadist: error: {exc}", file=sys.stderr)
        return 2


def _stars(args: argparse.Namespace) -> int:
    output = Path(
        args.output or Path(args.input).name.split(".")[0] + "_distances.ecsv"
    )
    if output.exists() and not args.overwrite:
        raise GaiadistError(f"{output} exists; pass --overwrite to replace it")
    table = read_table(args.input)
    print(f"read {len(table)} rows from {args.input}")
    has_zpt_inputs = all(name in table.colnames for name in ZEROPOINT_COLUMNS)
    if not args.no_zeropoint and "parallax_corrected" not in table.colnames:
        if has_zpt_inputs:
            table = apply_zeropoint(table)
            valid = np.asarray(table["zpt_valid"])
            zpt = u.Quantity(table["zpt"][valid])
            print(
                f"zero point: median {np.median(zpt):.4f} over the {valid.sum()} "
                "sources inside the recipe's validity"
            )
        else:
            print("zero point: not applied (the table lacks its input columns)")

    length_scale = _length_scale(args.length_scale, table.colnames)
    model = StarDistance(
        prior=args.prior, length_scale=length_scale, alpha=args.alpha, beta=args.beta
    )
    start = time.perf_counter()
    out = model.fit(table)
    elapsed = time.perf_counter() - start
    ok = np.asarray(out["r_flag"]) == 0
    print(
        f"distances: {ok.sum()} of {len(out)} stars in {elapsed:.2f} s "
        f"({args.prior} prior, L = {args.length_scale})"
    )
    plx = "parallax_corrected" if "parallax_corrected" in out.colnames else "parallax"
    cols = ["source_id"] if "source_id" in out.colnames else []
    view = out[cols + [plx, "parallax_error", "r_lo", "r_med", "r_hi", "r_flag"]][:8]
    for name in (plx, "parallax_error"):
        view[name].info.format = ".4f"
    for name in ("r_lo", "r_med", "r_hi"):
        view[name].info.format = ".1f"
    print(view)

    out.write(output, overwrite=args.overwrite)
    print(f"wrote {output}")
    return 0


def _length_scale(text: str, colnames: list[str]) -> u.Quantity | str:
    if text in colnames:
        return text
    try:
        value = u.Quantity(text)
    except (TypeError, ValueError):
        raise GaiadistError(
            f"--length-scale {text!r} is neither a length such as '1.35 kpc' nor "
            "a column of the table"
        ) from None
    return value * u.pc if value.unit == u.dimensionless_unscaled else value
