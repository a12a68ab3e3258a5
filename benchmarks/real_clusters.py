"""The cluster model on the real fields of ../shared/data/clusters, against HR23.

Usage: python benchmarks/real_clusters.py [--model astrometric|parallax]
       [--only NAME,NAME] [--out table.ecsv]

Fits every field of the folder with `ClusterDistance` (zero point applied,
every star used, default settings; the three fields whose query had a
parallax cut, the catalogue's ``parallax_cut``, with that cut in the
likelihood) and prints, per cluster, the fitted
distance, r50, proper motion centre and number of members (p_member > 0.5)
beside Hunt & Reffert's (2023), and at the end the scores of issue 19:

- D within max(1 %, 2 sigma) of HR23's dist50, sigma the fit's statistical
  sd (D_stat) and half HR23's dist84 - dist16 combined (issue 19), and
  within 2 sigma with the fit's total sd (D, with the shared parallax
  systematic; issue 20);
- contamination: the share of stars with p_member > 0.5 whose proper motion
  lies more than 3 sigma from HR23's centre, sigma their own errors and
  HR23's spread (s_pmra, s_pmdec) combined (a 2-d Mahalanobis distance);
- r50 within a factor 1.5 of HR23's r50_pc;
- (in ``--out`` only) the members' fitted velocity dispersion in mas/yr
  beside HR23's spread of proper motions (the root mean square of s_pmra
  and s_pmdec, errors included), the cluster's share of outliers and the
  stars with p_outlier > 0.5;
- the detection statistic (`ClusterFit.detection`) and how many fields
  have a cluster by its test;

and the fit's wall time and stars per second.

(``benchmarks/detection.py`` runs the detection test on the same fields with
their clusters cut out.)
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table

from gaiadist import ClusterDistance, apply_zeropoint
from gaiadist.surveys import _parse_cut

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clusters"


def pm_distance2(t, ref) -> np.ndarray:
    """Each star's squared Mahalanobis distance from HR23's proper motion.

    Its errors (with their correlation) and HR23's spread (s_pmra, s_pmdec)
    combined.
    """
    d0 = np.asarray(t["pmra"], float) - ref["pmra"]
    d1 = np.asarray(t["pmdec"], float) - ref["pmdec"]
    e0 = np.asarray(t["pmra_error"], float)
    e1 = np.asarray(t["pmdec_error"], float)
    rho = np.asarray(t["pmra_pmdec_corr"], float)
    a = e0**2 + ref["s_pmra"] ** 2
    c = e1**2 + ref["s_pmdec"] ** 2
    b = rho * e0 * e1
    return (c * d0**2 - 2 * b * d0 * d1 + a * d1**2) / (a * c - b * b)


def catalogue_cut(ref) -> tuple[float, float] | None:
    """The field's own parallax cut, read as `gaiadist.survey` reads it."""
    return _parse_cut(ref["parallax_cut"], ref["name"])


def contamination(fit, ref) -> tuple[float, int]:
    """Share of likely members (p > 0.5) > 3 sigma from HR23's proper motion."""
    member = np.asarray(fit.table["p_member"], float) > 0.5
    far = int(np.count_nonzero(pm_distance2(fit.table, ref)[member] > 9.0))
    return far / max(int(member.sum()), 1), far


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--only", default="")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    catalogue = Table.read(DATA / "clusters.ecsv")
    if args.only:
        keep = {n.strip() for n in args.only.split(",")}
        catalogue = catalogue[[n in keep for n in catalogue["name"]]]
    model = ClusterDistance(model=args.model)
    rows = []
    header = (
        f"{'cluster':13s} {'D':>7s} {'sd':>5s} {'sdtot':>5s} {'D_ref':>7s} "
        f"{'ok':>3s} {'tot':>3s} "
        f"{'r50':>5s} {'r50ref':>6s} {'pmra':>7s} {'ref':>7s} {'pmdec':>7s} "
        f"{'ref':>7s} {'n_mem':>5s} {'n_ref':>5s} {'contam':>6s} {'det':>6s} "
        f"{'s':>5s} warn"
    )
    print(header)
    for ref in catalogue:
        stars = apply_zeropoint(Table.read(DATA / ref["file"]))
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = model.fit(stars, parallax_range=catalogue_cut(ref))
        wall = time.perf_counter() - start
        doubts = [w for w in caught if "may not have converged" in str(w.message)]
        summary = {r["parameter"]: r for r in fit.summary()}
        d, sd = summary["D"]["mean"], summary["D"]["sd"]
        d_stat, sd_stat = summary["D_stat"]["mean"], summary["D_stat"]["sd"]
        ref_sd = 0.5 * (ref["dist84"] - ref["dist16"])
        tolerance = max(0.01 * ref["dist50"], 2 * np.hypot(sd_stat, ref_sd))
        ok = abs(d_stat - ref["dist50"]) <= tolerance
        ok_total = abs(d - ref["dist50"]) <= 2 * np.hypot(sd, ref_sd)
        size = summary.get("r50", summary.get("approx_size"))["mean"]
        pmra = summary["pmra"]["mean"] if "pmra" in summary else np.nan
        pmdec = summary["pmdec"]["mean"] if "pmdec" in summary else np.nan
        share, _ = contamination(fit, ref)
        n_mem = int(np.count_nonzero(np.asarray(fit.table["p_member"]) > 0.5))
        rows.append(
            {
                "name": ref["name"],
                "D": d,
                "D_sd": sd,
                "D_ref": ref["dist50"],
                "D_stat": d_stat,
                "D_stat_sd": sd_stat,
                "D_ok": ok,
                "D_ok_total": ok_total,
                "size": size,
                "r50_ref": ref["r50_pc"],
                "r50_ok": 1 / 1.5 <= size / ref["r50_pc"] <= 1.5,
                "pmra": pmra,
                "pmdec": pmdec,
                "pmra_ref": ref["pmra"],
                "pmdec_ref": ref["pmdec"],
                "n_members": n_mem,
                "n_ref": ref["n_stars"],
                "contamination": share,
                # The members' intrinsic spread beside HR23's observed one
                # (errors included): contamination is high where the first
                # is as large as the second.
                "dispersion_pm": (
                    summary["dispersion_pm"]["mean"]
                    if "dispersion_pm" in summary
                    else np.nan
                ),
                "s_pm_ref": float(np.hypot(ref["s_pmra"], ref["s_pmdec"]) / np.sqrt(2)),
                "outlier_share": (
                    summary["outlier_share"]["mean"]
                    if "outlier_share" in summary
                    else np.nan
                ),
                "n_outliers": int(
                    np.count_nonzero(np.asarray(fit.table["p_outlier"]) > 0.5)
                    if "p_outlier" in fit.table.colnames
                    else 0
                ),
                "detection": fit.detection,
                "detected": fit.detected,
                "seconds": wall,
                "stars": len(stars),
                "warned": bool(doubts),
                "problems": "; ".join(fit.problems()),
            }
        )
        print(
            f"{ref['name']:13s} {d_stat:7.0f} {sd_stat:5.0f} {sd:5.0f} "
            f"{ref['dist50']:7.0f} {'yes' if ok else 'NO':>3s} "
            f"{'yes' if ok_total else 'NO':>3s} {size:5.2f} {ref['r50_pc']:6.2f} "
            f"{pmra:7.3f} {ref['pmra']:7.3f} {pmdec:7.3f} {ref['pmdec']:7.3f} "
            f"{n_mem:5d} {ref['n_stars']:5d} {share:6.1%} {fit.detection:6.0f} "
            f"{wall:5.1f} "
            f"{'yes' if doubts else ''}",
            flush=True,
        )
    table = Table(rows)
    n = len(table)
    print(
        f"\nD within max(1 %, 2 sigma): {int(np.sum(table['D_ok']))}/{n}, "
        f"within 2 sigma (total): {int(np.sum(table['D_ok_total']))}/{n}; "
        f"r50 within 1.5x: {int(np.sum(table['r50_ok']))}/{n}; "
        f"contamination <= 3 %: {int(np.sum(table['contamination'] <= 0.03))}/{n} "
        f"(median {np.median(table['contamination']):.1%}); "
        f"warned: {int(np.sum(table['warned']))}/{n}; "
        f"detected: {int(np.sum(table['detected']))}/{n} (smallest detection "
        f"{np.min(table['detection']):.0f} nats)"
    )
    stars, seconds = int(np.sum(table["stars"])), float(np.sum(table["seconds"]))
    print(
        f"{stars} stars in {seconds:.0f} s: {stars / seconds:.0f} stars/s "
        "(compilation included)"
    )
    for row in table[table["warned"]]:
        print(f"  {row['name']}: {row['problems']}")
    if args.out:
        table.write(args.out, overwrite=True)


if __name__ == "__main__":
    main()
