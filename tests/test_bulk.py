"""Bulk star distances over partitioned files: results, failures, resuming, Dask."""

import warnings

import numpy as np
import pytest
from astropy.table import QTable, vstack

from gaiadist import InputError, StarDistance, apply_zeropoint, bulk_star_distances
from gaiadist.simulate import cluster_field


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """3,000 simulated stars in Parquet, CSV.gz and FITS files, and a bad file."""
    folder = tmp_path_factory.mktemp("bulk_in")
    stars = cluster_field(3000, seed=11)
    stars.meta.clear()
    stars["source_id"][0] = 2**63 - 1  # exactness survives every format
    stars[:1200].write(folder / "part_a.parquet")
    stars[1200:2100].to_pandas().to_csv(folder / "part_b.csv.gz", index=False)
    stars[2100:].write(folder / "part_c.fits")
    (folder / "part_d.csv").write_text("x,y\n1,2\n")
    return folder, stars


def _read(folder):
    parts = sorted(folder.glob("part-*.parquet"))
    return vstack([QTable.read(p) for p in parts], metadata_conflicts="silent")


def test_bulk_matches_star_distance_and_fails_alone(inputs, tmp_path):
    folder, stars = inputs
    out = bulk_star_distances(str(folder), tmp_path, chunk_rows=500)
    assert list(out["status"]) == ["done", "done", "done", "failed"]
    assert list(out["rows"][:3]) == [1200, 900, 900]
    assert list(out["parts"][:3]) == [3, 2, 2]
    assert "no column 'parallax'" in out["message"][3]
    assert out["seconds"].unit == "s" and np.all(out["peak_memory"][:3] > 0)
    want = StarDistance().fit(apply_zeropoint(stars))
    slices = {"part_a": slice(0, 1200), "part_b": slice(1200, 2100)}
    slices["part_c"] = slice(2100, None)
    for name, rows in slices.items():
        got = _read(tmp_path / name)
        np.testing.assert_array_equal(got["source_id"], stars["source_id"][rows])
        assert got.colnames[: len(stars.colnames)] == stars.colnames
        for col in ("zpt", "r_lo", "r_med", "r_hi"):
            # Chunks of another shape: float32 rounding moves a few ulps.
            np.testing.assert_allclose(got[col].value, want[col][rows].value, rtol=1e-5)
        assert got["r_med"].unit == "pc"
    assert _read(tmp_path / "part_a")["source_id"][0] == 2**63 - 1
    # The output is a Parquet dataset that dask.dataframe reads.
    import dask.dataframe as dd

    with warnings.catch_warnings():
        # dask 2026.8's parquet reader calls a pandas 3.1 deprecated keyword.
        warnings.filterwarnings("ignore", message="The inplace keyword")
        frame = dd.read_parquet(str(tmp_path / "part_b")).compute()
    assert len(frame) == 900 and frame["source_id"].dtype == np.int64


def test_bulk_resumes_only_what_is_missing(inputs, tmp_path):
    folder, _ = inputs
    files = [folder / "part_a.parquet", folder / "part_c.fits"]
    bulk_star_distances(files, tmp_path, chunk_rows=500)
    # An interruption: file a lost its last part and its completion mark.
    done = tmp_path / "part_a"
    (done / "_SUCCESS").unlink()
    (done / "part-00002.parquet").unlink()
    kept = (done / "part-00000.parquet").stat().st_mtime_ns
    out = bulk_star_distances(files, tmp_path, chunk_rows=500)
    assert list(out["status"]) == ["done", "skipped"]
    assert (done / "part-00000.parquet").stat().st_mtime_ns == kept
    assert len(_read(done)) == 1200 and (done / "_SUCCESS").exists()


def test_bulk_keeps_chosen_columns(inputs, tmp_path):
    folder, _ = inputs
    out = bulk_star_distances(
        [folder / "part_c.fits"], tmp_path, columns=["source_id", "parallax"]
    )
    got = _read(tmp_path / "part_c")
    assert out["status"][0] == "done"
    assert got.colnames == [
        "source_id",
        "parallax",
        "zpt",
        "parallax_corrected",
        "zpt_valid",
        "zpt_flag",
        "r_med",
        "r_lo",
        "r_hi",
        "r_flag",
    ]


def test_bulk_on_a_running_dask_cluster(inputs, tmp_path):
    from distributed import LocalCluster

    folder, _ = inputs
    files = [folder / "part_a.parquet", folder / "part_b.csv.gz"]
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        out = bulk_star_distances(
            files,
            tmp_path / "dask",
            chunk_rows=500,
            scheduler=cluster.scheduler_address,
        )
    assert list(out["status"]) == ["done", "done"]
    ref = bulk_star_distances(files, tmp_path / "seq", chunk_rows=500)
    for name in ("part_a", "part_b"):
        a, b = _read(tmp_path / "dask" / name), _read(tmp_path / "seq" / name)
        np.testing.assert_array_equal(a["r_med"], b["r_med"])
    assert list(ref["rows"]) == list(out["rows"])


def test_bulk_refuses_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="no input files"):
        bulk_star_distances(str(tmp_path / "*.parquet"), tmp_path)
    with pytest.raises(InputError, match="positive"):
        bulk_star_distances([tmp_path / "a.fits"], tmp_path, chunk_rows=0)
    with pytest.raises(InputError, match="StarDistance"):
        bulk_star_distances([tmp_path / "a.fits"], tmp_path, model="edsd")
    with pytest.raises(InputError, match="different names"):
        bulk_star_distances([tmp_path / "a.fits", tmp_path / "x" / "a.fits"], tmp_path)


def test_bulk_command(inputs, tmp_path, capsys):
    from gaiadist.cli import main

    folder, _ = inputs
    args = ["bulk", str(folder / "part_*"), "-o", str(tmp_path), "--chunk-rows", "500"]
    assert main(args) == 1  # part_d cannot be used
    printed = capsys.readouterr().out
    assert "3 files done (3000 stars" in printed and "1 failed" in printed
    assert "part_d.csv: the input table has no column 'parallax'" in printed
    assert main(args) == 1
    assert "3 finished before" in capsys.readouterr().out
