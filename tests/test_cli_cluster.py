"""The ``gaiadist cluster`` and ``gaiadist demo`` commands (apart from
test_cli.py, so that the two files can run side by side).

Every fit here has 400 stars and the same short chains (`FAST`): the
astrometric model's programs, compiled for the first, serve the others.
"""

import numpy as np
import pytest
from astropy.table import QTable, Table

from gaiadist import read_gaia
from gaiadist.cli import main
from gaiadist.columns import write_table

from .conftest import FAST, small_field


@pytest.mark.filterwarnings("ignore:the cluster fit may not have converged")
def test_cluster_command_on_a_simulated_field(tmp_path, capsys):
    import astropy.units as u

    from gaiadist.simulate import cluster_field

    stars = cluster_field(400, distance=250 * u.pc, size=3 * u.pc, seed=4)
    path = tmp_path / "field.ecsv"
    stars.write(path)
    out = tmp_path / "members.fits"
    figures = tmp_path / "figures"
    args = ["cluster", str(path), "-o", str(out), "--seed", "2", *FAST]
    assert main([*args, "--plots", str(figures)]) == 0
    printed = capsys.readouterr().out
    assert "marginal fit of 400 stars" in printed
    for name in ("corner", "predictive", "cmd"):
        assert (figures / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

    line = next(x for x in printed.splitlines() if x.split()[:2] == ["D", "pc"])
    assert abs(float(line.split()[2]) - 250) < 5
    got = read_gaia(out)
    assert got.meta["truth"]["D"] == 250  # nested metadata survives FITS
    assert len(got) == 400 and {"p_member", "r_med", "zpt"} <= set(got.colnames)
    np.testing.assert_array_equal(got["source_id"], stars["source_id"])
    bad = ["cluster", str(path), "-o", str(tmp_path / "x.ecsv")]
    assert main([*bad, "--distance-guess", "far"]) == 2
    assert "--distance-guess 'far'" in capsys.readouterr().err
    # Without photometry there is no colour-magnitude diagram to draw.
    bare = tmp_path / "bare.ecsv"
    stars["source_id", "parallax", "parallax_error"].write(bare)
    plain = tmp_path / "plain"
    with pytest.warns(Warning, match="zero point was"):
        args = ["cluster", str(bare), "--plots", str(plain), *FAST]
        assert main([*args, "-o", str(tmp_path / "plain.ecsv")]) == 0
    assert sorted(p.name for p in plain.iterdir()) == ["corner.png", "predictive.png"]


@pytest.mark.filterwarnings("ignore:the cluster fit may not have converged")
def test_cluster_command_saves_its_summary_and_every_row(tmp_path, capsys):
    path = small_field(tmp_path)
    out = tmp_path / "run" / "m_members.ecsv"
    out.parent.mkdir()
    args = ["cluster", str(path), "-o", str(out), "--parallax-range", "0.5", "10"]
    assert main([*args, *FAST]) == 0
    printed = capsys.readouterr().out
    assert "stars with p_member > 0.5" in printed
    summary = QTable.read(tmp_path / "run" / "m_summary.ecsv")
    assert list(summary["parameter"][:4]) == ["D", "r50", "pmra", "pmdec"]
    assert summary["unit"][2] == "mas / yr"
    record = summary.meta["gaiadist"]
    assert record["cluster_distance"]["parallax_range_mas"] == [0.5, 10.0]
    assert record["cluster_distance"]["selection"] == "parallax_range in the likelihood"
    assert record["cluster_distance"]["num_samples"] == 100
    assert record["input"] == str(path) and "zeropoint" in record
    assert "versions" in record["cluster_distance"]
    assert "ESS" not in printed and ".0 " not in printed.split("ess_tail")[1][:200]
    members = read_gaia(out)
    assert len(members) == 400  # every row, those outside the cut flagged
    plx = members["parallax"].value
    outside = ~((plx > 0.5) & (plx < 10))
    assert outside.any() and np.all(members["r_flag"][outside] == 8)
    assert np.all(np.isnan(members["p_member"][outside]))
    # -q prints nothing and still writes both files.
    quiet = tmp_path / "q_members.ecsv"
    assert main(["-q", "cluster", str(path), "-o", str(quiet), *FAST]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "q_summary.ecsv").exists()


def test_cluster_command_says_when_there_is_no_cluster(tmp_path, capsys):
    path = small_field(tmp_path, fraction=0.0)
    out = tmp_path / "null_members.ecsv"
    with pytest.warns(Warning, match="no cluster: "):
        assert main(["cluster", str(path), "-o", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "NO CLUSTER: no cluster: " in printed and "D  " not in printed
    summary = QTable.read(tmp_path / "null_summary.ecsv")
    assert summary.meta["detected"] is False and np.all(np.isnan(summary["mean"]))
    assert len(read_gaia(out)) == 400


@pytest.mark.filterwarnings("ignore:the cluster fit may not have converged")
def test_same_seed_gives_byte_identical_files(tmp_path):
    path = small_field(tmp_path)
    runs = [tmp_path / f"{name}_members.fits" for name in ("a", "b")]
    for run in runs:
        assert main(["-q", "cluster", str(path), "-o", str(run), *FAST]) == 0
    assert runs[0].read_bytes() == runs[1].read_bytes()
    summaries = [tmp_path / f"{name}_summary.ecsv" for name in ("a", "b")]
    assert summaries[0].read_bytes() == summaries[1].read_bytes()
    ecsv = [tmp_path / f"{name}.ecsv" for name in ("a", "b")]
    for run, out in zip(runs, ecsv, strict=True):
        write_table(read_gaia(run), out)
    assert ecsv[0].read_bytes() == ecsv[1].read_bytes()


@pytest.mark.filterwarnings("ignore:the cluster fit may not have converged")
def test_masked_parallaxes_are_counted_as_numbers(tmp_path, capsys):
    path = small_field(tmp_path)
    table = Table.read(path)
    table = Table(table, masked=True)
    table["parallax"].mask[:5] = True
    masked = tmp_path / "masked.ecsv"
    table.write(masked)
    args = ["cluster", str(masked), "-o", str(tmp_path / "m.ecsv")]
    with pytest.warns(Warning, match="5 of 400 rows cannot be used"):
        assert main([*args, "--parallax-range", "0.5", "10", *FAST]) == 0
    printed = capsys.readouterr().out
    assert "—" not in printed
    assert "selected " in printed and " of 400 stars" in printed


# Short chains: this test is about the command, not the sampler's convergence.
@pytest.mark.filterwarnings("ignore:the cluster fit may not have converged")
def test_demo_recovers_its_truth_and_writes_tables(tmp_path, capsys):
    folder = tmp_path / "demo"
    assert main(["demo", "-o", str(folder), "--stars", "400", *FAST]) == 0
    printed = capsys.readouterr().out
    assert "StarDistance (EDSD" in printed
    summary = QTable.read(folder / "cluster_summary.ecsv")
    # D (with the parallax systematic and without), r50, the proper motion,
    # the dispersion, Q, the outliers' share and dispersion, and L against
    # the truth.
    assert len(summary) == 10
    for row in summary:
        assert abs(row["mean"] - row["truth"]) < 3 * row["sd"], row["parameter"]
    members = QTable.read(folder / "cluster_members.ecsv")
    stars = QTable.read(folder / "star_distances.ecsv")
    assert len(members) == len(stars) == 400
    for name in ("corner", "cmd", "members", "predictive", "star_distances"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    cluster = members["p_member"] + members["p_outlier"]
    assert abs(np.nansum(cluster) - members["true_member"].sum()) < 20
