"""The cluster test of `ClusterDistance` on fields with and without a cluster.

Usage: python benchmarks/detection.py [--simulated 1000,3000,10000,30000]
       [--seeds 3] [--members 0,30,100] [--real] [--only NAME,NAME]
       [--model parallax] [--cut 0.2,3]

For each field, a fit with short chains (they matter only where a cluster is
found) and the test's numbers from its ``meta``: ``detection`` (the log
likelihood ratio of the model with a cluster to the field alone, nats),
the velocity dispersion (km/s), r50 (pc) and members (the sum of the
memberships) of the cluster at the mode, or for ``--model parallax`` the
width of its ln r, and whether the fit found a cluster. ``--cut`` fits the
simulated fields inside that parallax range (the cut in the likelihood);
the real fields are fitted with their own cuts (the catalogue's
``parallax_cut``).

- ``--simulated``: `gaiadist.simulate.cluster_field` cones of those sizes
  (seeds 1 to ``--seeds``) with about ``--members`` cluster members each
  (0: no cluster; the cluster M67-like in motion, 900 pc, r50 3 pc);
- ``--real``: every field of ``../shared/data/clusters`` as it is, and
  again without the stars within 5 sigma of Hunt & Reffert's proper motion
  centre (`real_clusters.pm_distance2`).

Prints one line per field and, at the end, how many fields of each kind
the test called right.
"""

import argparse
import time
import warnings

import numpy as np
from astropy.table import Table
from real_clusters import DATA, catalogue_cut, pm_distance2

from gaiadist import ClusterDistance, apply_zeropoint
from gaiadist.simulate import cluster_field

FAST = {"num_warmup": 100, "num_samples": 100}


def test(model, stars, cut=None) -> dict:
    """The cluster test's numbers for one field."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(stars, seed=1, parallax_range=cut, **FAST)
    meta = fit.table.meta["gaiadist"]["cluster_distance"]
    if fit.model == "parallax":
        width = (meta["mode_relative_size"], np.nan)
    else:
        width = (meta["mode_dispersion_km_s"], meta["mode_r50_pc"])
    return {
        "detection": fit.detection,
        "width": width,
        "members": meta.get("mode_members", np.nan),
        "found": fit.detected,
        "seconds": time.perf_counter() - start,
    }


def line(label: str, n: int, truth: bool, r: dict) -> str:
    right = "right" if r["found"] == truth else "WRONG"
    return (
        f"{label:28s} {n:6d} {r['detection']:8.1f} {r['width'][0]:7.3g} "
        f"{r['width'][1]:6.1f} {r['members']:7.1f} "
        f"{'cluster' if r['found'] else 'none':8s} "
        f"{right:5s} {r['seconds']:6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulated", default="")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--members", default="0")
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--model", default=None, choices=("astrometric", "parallax"))
    parser.add_argument("--cut", default="")
    args = parser.parse_args()
    model = ClusterDistance(model=args.model)
    cut = tuple(float(c) for c in args.cut.split(",")) if args.cut else None
    width = "width" if args.model == "parallax" else "disp"
    print(
        f"{'field':28s} {'stars':>6s} {'det':>8s} {width:>7s} {'r50':>6s} "
        f"{'members':>7s} {'found':8s} {'':5s} {'s':>6s}"
    )
    scores = {}
    sizes = [int(n) for n in args.simulated.split(",") if n]
    for n in sizes:
        for members in (int(m) for m in args.members.split(",")):
            for seed in range(1, args.seeds + 1):
                stars = cluster_field(n, fraction=members / n, seed=seed)
                truth = bool(np.count_nonzero(stars["true_member"]))
                r = test(model, apply_zeropoint(stars), cut)
                kind = f"simulated, {members} members"
                scores.setdefault(kind, []).append(r["found"] == truth)
                print(line(f"sim n={n} m={members} seed={seed}", n, truth, r))
    if args.real:
        catalogue = Table.read(DATA / "clusters.ecsv")
        if args.only:
            keep = {n.strip() for n in args.only.split(",")}
            catalogue = catalogue[[n in keep for n in catalogue["name"]]]
        for ref in catalogue:
            stars = apply_zeropoint(Table.read(DATA / ref["file"]))
            own = catalogue_cut(ref)
            r = test(model, stars, own)
            scores.setdefault("real, with cluster", []).append(r["found"])
            print(line(ref["name"], len(stars), True, r), flush=True)
            rest = stars[pm_distance2(stars, ref) >= 25.0]
            r = test(model, rest, own)
            scores.setdefault("real, cluster cut out", []).append(not r["found"])
            print(line(f"{ref['name']} (cut out)", len(rest), False, r), flush=True)
    print()
    for kind, right in scores.items():
        print(f"{kind}: right in {sum(right)}/{len(right)}")


if __name__ == "__main__":
    main()
