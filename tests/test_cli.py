import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.table import QTable, Table

from gaiadist import read_gaia
from gaiadist.cli import main

from .conftest import FAST, small_field
from .conftest import M67_PATH as _M67


def test_stars_command_on_m67(m67_path, tmp_path, capsys):
    out_file = tmp_path / "m67.ecsv"
    with pytest.warns(Warning, match="outside the calibration"):
        args = ["stars", str(m67_path), "-o", str(out_file)]
        assert main([*args, "--plot", str(tmp_path / "d.png"), "--progress"]) == 0
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    captured = capsys.readouterr()
    # The bar is drawn at once with its total; whether the 100 % state is drawn
    # before it is cleared (leave=False) depends on timing.
    assert "star distances:   0%" in captured.err and "0.00/5.33k" in captured.err
    printed = captured.out
    assert "5331 of 5331 stars" in printed and "zero point: median" in printed
    out = QTable.read(out_file)
    m67 = Table.read(m67_path)
    assert len(out) == len(m67)
    np.testing.assert_array_equal(out["source_id"], m67["source_id"])
    assert out["source_id"].dtype == np.int64
    assert str(out["r_med"].unit) == "pc"
    assert out.meta["gaiadist"]["star_distance"]["parallax_column"] == (
        "parallax_corrected"
    )


def test_stars_command_with_the_bj21_prior(m67_path, tmp_path, capsys):
    from gaiadist import StarDistance, apply_zeropoint

    out_file = tmp_path / "m67_bj21.ecsv"
    with pytest.warns(Warning, match="outside the calibration"):
        assert (
            main(["stars", str(m67_path), "--prior", "bj21", "-o", str(out_file)]) == 0
        )
    printed = capsys.readouterr().out
    assert "5331 of 5331 stars" in printed and "Bailer-Jones et al. (2021)" in printed
    out = QTable.read(out_file)
    assert out.meta["gaiadist"]["star_distance"]["prior"] == "bj21"
    with pytest.warns(Warning, match="outside the calibration"):
        stars = apply_zeropoint(Table.read(m67_path))
    api = StarDistance(prior="bj21").fit(stars)
    np.testing.assert_array_equal(out["r_med"].value, api["r_med"].value)
    # The settings it cannot take are refused before anything is read.
    for extra in (["--length-scale", "1 kpc"], ["--no-zeropoint"]):
        assert main(["stars", str(m67_path), "--prior", "bj21", *extra]) == 2
        assert "--prior bj21" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*outside the calibration")
def test_stars_command_with_the_bj21_prior_on_every_cluster_field(tmp_path):
    """Every real field (45-77 s on 2 cores; ``pytest -m slow``)."""
    files = sorted((Path(os.fspath(_M67)).parent / "clusters").glob("*.fits.gz"))
    if not files:
        pytest.skip("no cluster fields in ../shared/data/clusters")
    for path in files:
        out_file = tmp_path / f"{path.name}.ecsv"
        assert (
            main(["-q", "stars", str(path), "--prior", "bj21", "-o", str(out_file)])
            == 0
        )
        out = QTable.read(out_file)
        ok = np.asarray(out["r_flag"]) == 0
        # Only the 2-parameter sources, without a parallax, go without.
        has_parallax = np.isfinite(np.asarray(out["parallax_corrected"].value))
        assert np.array_equal(ok, has_parallax) and ok.mean() > 0.9, path.name
        lo, med, hi = (np.asarray(out[c].value)[ok] for c in ("r_lo", "r_med", "r_hi"))
        assert np.all((0 < lo) & (lo < med) & (med < hi)), path.name


def test_stars_command_errors_are_one_line(tmp_path, capsys):
    t = Table({"parallax": [1.0, 2.0], "parallax_error": [0.1, 0.2]})
    path = tmp_path / "in.ecsv"
    t.write(path)
    assert main(["stars", str(tmp_path / "missing.fits")]) == 2
    assert "missing.fits: no such file" in capsys.readouterr().err
    out = tmp_path / "out.ecsv"
    assert main(["stars", str(path), "-o", str(out), "--length-scale", "3 mas"]) == 2
    assert "length_scale is in mas" in capsys.readouterr().err
    with pytest.warns(Warning, match="no parallax zero point"):
        assert main(["stars", str(path), "-o", str(out)]) == 0
    assert "zero point: not applied" in capsys.readouterr().out
    assert main(["stars", str(path), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_query_command_payload_and_errors(tmp_path, capsys):
    assert main(["query", "132.846 11.814", "10 arcmin", "--payload"]) == 0
    adql = capsys.readouterr().out
    assert "CIRCLE('ICRS', 132.8460000000, 11.8140000000, 0.1666666667)" in adql
    assert main(["query", "1 2", "10 pc", "--payload"]) == 2
    assert "radius '10 pc' is in pc: give an angle" in capsys.readouterr().err
    assert main(["query", "1 2", "10", "--payload"]) == 2
    assert "radius '10' has no unit: give an angle" in capsys.readouterr().err
    out = tmp_path / "cone.csv"
    args = ["query", "1 2", "1 arcmin", "--tap-url", "http://127.0.0.1:9/tap"]
    assert main([*args, "-o", str(out), "--timeout", "10", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gaiadist: error: TAP service http://127.0.0.1:9/tap")
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.skipif(
    "GAIADIST_TEST_TAP_URL" not in os.environ, reason="no local TAP server"
)
def test_query_command_writes_the_cone(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = os.environ["GAIADIST_TEST_TAP_URL"]
    cols = "source_id,ra,dec,parallax,parallax_error"
    args = ["query", "132.846 11.814", "5 arcmin", "--tap-url", url]
    assert main([*args, "--columns", cols, "-o", "cone.fits"]) == 0
    assert "sources within 5.0 arcmin" in capsys.readouterr().out
    got = QTable.read(tmp_path / "cone.fits")
    assert got.colnames == cols.split(",") and len(got) > 100
    assert got["source_id"].dtype.kind == "i" and got["parallax"].unit == "mas"
    assert main([*args, "--columns", cols, "-o", "cone.fits"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_zeropoint_command(m67_path, tmp_path, capsys):
    out = tmp_path / "zpt.parquet"
    with pytest.warns(Warning, match="outside the calibration"):
        assert main(["zeropoint", str(m67_path), "-o", str(out)]) == 0
    got = QTable.read(out)
    assert {"zpt", "parallax_corrected", "zpt_valid"} <= set(got.colnames)
    assert len(got) == 5331
    t = Table({"parallax": [1.0], "parallax_error": [0.1]})
    t.write(tmp_path / "bare.ecsv")
    assert main(["zeropoint", str(tmp_path / "bare.ecsv")]) == 2
    assert "lacks the zero point's input columns" in capsys.readouterr().err


def test_quiet_prints_nothing_but_keeps_payload_and_errors(tmp_path, capsys):
    t = Table({"parallax": [1.0, 2.0], "parallax_error": [0.1, 0.2]})
    path = tmp_path / "in.ecsv"
    t.write(path)
    out = tmp_path / "out.ecsv"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # -q shows no warnings either
        assert main(["--quiet", "stars", str(path), "-o", str(out)]) == 0
    assert capsys.readouterr().out == "" and out.exists()
    assert main(["-q", "query", "1 2", "1 arcmin", "--payload"]) == 0
    assert capsys.readouterr().out.startswith("SELECT ")
    assert main(["-q", "stars", str(path), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_compile_cache_keeps_the_programs_for_later_runs(tmp_path):
    """The command keeps its compiled programs in --compile-cache (a new process).

    Shown with the star kernel, the quickest to compile (a cluster fit keeps
    its mode search, sampler and per-star programs the same way).
    """
    import subprocess
    import sys

    t = Table({"parallax": [1.0, 0.5, -0.2], "parallax_error": [0.1, 0.3, 0.4]})
    path = tmp_path / "stars.ecsv"
    t.write(path)
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "gaiadist", "-q", "--compile-cache", str(cache)]
    distances = str(tmp_path / "d.ecsv")
    run = subprocess.run(
        [*command, "stars", str(path), "-o", distances],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    # The kernel's programs that took longer than 0.5 s to compile (which
    # depends on the machine), among them always the largest.
    # (JAX's lock file, there where the cache has a size limit, aside.)
    names = {p.name.split("-")[0] for p in cache.iterdir() if p.name != ".lockfile"}
    kernel = {
        f"jit__{name}"
        for name in (
            "segments",
            "split_empty",
            "log_density_at_nodes",
            "interval_masses",
            "invert_cdf",
        )
    }
    assert "jit__segments" in names and names <= kernel
    # --no-compile-cache keeps nothing.
    other = tmp_path / "other"
    command = [sys.executable, "-m", "gaiadist", "-q", "--no-compile-cache"]
    distances = str(tmp_path / "e.ecsv")
    run = subprocess.run(
        [*command, "--compile-cache", str(other), "stars", str(path), "-o", distances],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert not other.exists()


def test_commands_without_jax_leave_the_compile_cache_alone(tmp_path):
    import subprocess
    import sys

    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "gaiadist", "-q", "--compile-cache", str(cache)]
    run = subprocess.run(
        [*command, "query", "1 2", "1 arcmin", "--payload"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("SELECT ")
    assert not cache.exists()


def test_use_compilation_cache_keeps_a_folder_already_set(tmp_path):
    import jax

    from gaiadist import use_compilation_cache

    # conftest gave this process a folder; a second one is not taken.
    before = jax.config.jax_compilation_cache_dir
    assert use_compilation_cache(tmp_path / "mine") == Path(before)
    assert jax.config.jax_compilation_cache_dir == before
    assert not (tmp_path / "mine").exists()


@pytest.mark.filterwarnings("ignore:the cluster fit may not have converged")
def test_one_zero_point_whatever_the_route(m67_path, tmp_path):
    from gaiadist import apply_zeropoint

    with pytest.warns(Warning, match="calibration"):
        want = apply_zeropoint(Table.read(m67_path))["zpt"]
    files = {
        "zeropoint": tmp_path / "z.fits",
        "stars": tmp_path / "s.ecsv",
        "cluster": tmp_path / "c_members.ecsv",
    }
    for command, out in files.items():
        args = [command, str(m67_path), "-o", str(out), "-q"]
        if command == "cluster":
            args += ["--parallax-range", "0.2", "3", "--no-selection", *FAST]
        assert main(args) == 0
        np.testing.assert_array_equal(read_gaia(out)["zpt"], want, err_msg=command)
    record = read_gaia(files["cluster"]).meta["gaiadist"]["cluster_distance"]
    assert (
        record["selection"] == "parallax_range not in the likelihood (selection=False)"
    )
    strict = tmp_path / "strict.ecsv"
    assert main(["zeropoint", str(m67_path), "-o", str(strict), "--strict", "-q"]) == 0
    assert np.count_nonzero(np.isnan(read_gaia(strict)["zpt"])) == 706


def test_bad_arguments_and_inputs_are_one_line_errors(tmp_path, capsys):
    path = small_field(tmp_path, n=50)
    cases = [
        (["stars", str(path), "--length-scale", "1.35"], "has no unit"),
        (["cluster", str(path), "--distance-guess", "900"], "has no unit"),
        (["cluster", str(path), "--parallax-range", "3", "0.2"], "MIN before MAX"),
        (["stars", str(tmp_path)], "is a folder, not a table file"),
        (["cluster", str(tmp_path / "notes.txt")], "cannot tell the format"),
        (["zeropoint", str(tmp_path / "gone.fits")], "gone.fits: no such file"),
    ]
    (tmp_path / "notes.txt").write_text("a b\n")
    # The default output of the missing input exists: the input is named.
    (tmp_path / "gone_zpt.ecsv").write_text("")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(tmp_path)
    try:
        for args, message in cases:
            assert main(args) == 2, args
            err = capsys.readouterr().err
            assert message in err and len(err.strip().splitlines()) == 1, err
    finally:
        monkeypatch.undo()


def test_version_and_help_show_defaults(capsys):
    from gaiadist import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"gaiadist {__version__}"
    for command, expected in (
        ("cluster", ["--seed SEED", "(default: 0)", "(default: 1000)"]),
        ("stars", ["(default: edsd)", "(default: 1.35 kpc;", "bj21"]),
        ("demo", ["(default: 4000)"]),
    ):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for part in expected:
            assert part in text, (command, part)
