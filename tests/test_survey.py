"""Surveys of many clusters: truth recovery, failures, resuming, execution modes."""

import json
import os

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import QTable, Table

from gaiadist import ClusterDistance, InputError, read_gaia, survey
from gaiadist import surveys as survey_module
from gaiadist.cli import main
from gaiadist.cluster import DETECTION_THRESHOLD
from gaiadist.simulate import cluster_field

from .conftest import M67_PATH

# Three clusters whose star counts share one padded size (one compilation).
FIELDS = [
    ("NGC 1", 1000, 250.0, 3.0, 0.40),
    ("NGC 2", 1010, 600.0, 8.0, 0.30),
    ("NGC 3", 1020, 1000.0, 10.0, 0.35),
]
# The survey machinery is tested with the parallax-only model (the faster to
# compile in worker processes); the real fields with the astrometric one.
POPULATION = ("D", "approx_size", "L", "Q")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """Three simulated clusters, a missing file and a file of 5 stars."""
    folder = tmp_path_factory.mktemp("cones")
    truth = {}
    for i, (name, n, distance, size, fraction) in enumerate(FIELDS):
        stars = cluster_field(
            n, distance=distance * u.pc, size=size * u.pc, fraction=fraction, seed=i
        )
        truth[name] = stars.meta.pop("truth")
        stars.write(folder / f"{name.replace(' ', '_')}.ecsv")
    few = cluster_field(5, seed=9)
    few.meta.clear()
    few.write(folder / "few.ecsv")
    names = [f[0] for f in FIELDS] + ["missing", "few"]
    table = Table(
        {
            "name": names,
            "distance": [np.nan, 550.0, np.nan, np.nan, np.nan] * u.pc,
            "note": ["a", "b", "c", "d", "e"],
        }
    )
    template = str(folder / "{name}.ecsv")
    table["file"] = [template.format(name=x.replace(" ", "_")) for x in names]
    return table, truth


def _check_truth(out, truth):
    for row in out[: len(FIELDS)]:
        assert row["status"] in ("ok", "unconverged"), row["message"]
        assert row["r_hat_max"] < 1.05
        for k in POPULATION:
            want = truth[row["name"]][k]
            got, sd = (u.Quantity(row[c]).value for c in (k, f"{k}_sd"))
            assert abs(got - want) < 3.5 * sd, (row["name"], k, got, sd, want)
        assert row["D_lo"] < row["D"] < row["D_hi"]
        assert (
            abs(row["sum_p_member"] - truth[row["name"]]["n_members"])
            < 0.15 * (truth[row["name"]]["n_members"])
        )


def _check_failures(out):
    missing, few = out[-2], out[-1]
    assert missing["status"] == few["status"] == "failed"
    assert "missing.ecsv" in missing["message"]
    assert "only 5 of 5 rows" in few["message"]
    assert np.isnan(missing["D"]) and missing["members_file"] == ""


@pytest.fixture(scope="module")
def sequential(catalogue, tmp_path_factory):
    """The sequential survey, interrupted after one cluster and resumed."""
    table, _ = catalogue
    folder = tmp_path_factory.mktemp("survey")
    calls = []
    real = survey_module._fit_one

    def interrupted(task, settings):
        if task["name"] == "NGC 2":
            raise KeyboardInterrupt
        return real(task, settings)

    def counted(task, settings):
        calls.append(task["name"])
        return real(task, settings)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(survey_module, "_fit_one", interrupted)
        with pytest.raises(KeyboardInterrupt):
            survey(table, folder, model="parallax")
        assert sorted(p.name for p in (folder / "results").iterdir()) == ["NGC_1.json"]
        mp.setattr(survey_module, "_fit_one", counted)
        out = survey(table, folder, model="parallax")
        first_calls = list(calls)
        calls.clear()
        again = survey(table, folder, model="parallax")
    return folder, out, again, first_calls, list(calls)


def test_survey_recovers_truth_and_fails_cleanly(catalogue, sequential):
    table, truth = catalogue
    folder, out, *_ = sequential
    assert list(out["name"]) == list(table["name"])
    assert out.colnames[: len(table.colnames)] == table.colnames
    assert list(out["note"]) == list(table["note"])
    _check_truth(out, truth)
    _check_failures(out)
    assert out["D"].unit == u.pc and out["seconds"].unit == u.s
    members = QTable.read(folder / out["members_file"][0])
    stars = Table.read(table["file"][0])
    assert len(members) == len(stars) == out["n_stars"][0] == out["n_used"][0]
    np.testing.assert_array_equal(members["source_id"], stars["source_id"])
    dtype = members["source_id"].dtype
    assert dtype.kind == "i" and dtype.itemsize == 8
    assert {"p_member", "r_med", "zpt"} <= set(members.colnames)
    np.testing.assert_allclose(np.sum(members["p_member"]), out["sum_p_member"][0])
    written = QTable.read(folder / "survey.ecsv")
    np.testing.assert_array_equal(written["D"], out["D"])


def test_survey_resumes_and_retries_only_failures(sequential):
    folder, out, again, first_calls, second_calls = sequential
    # NGC 1 was checkpointed before the interruption and not fitted again.
    assert first_calls == ["NGC 2", "NGC 3", "missing", "few"]
    assert second_calls == ["missing", "few"]
    for name in ("D", "Q", "sum_p_member", "seconds"):  # read back, not refitted
        np.testing.assert_array_equal(again[name][:3], out[name][:3])
    assert list(again["status"]) == list(out["status"])


def test_changed_settings_are_not_taken_from_checkpoints(catalogue, sequential):
    table, _ = catalogue
    folder = sequential[0]
    plain = {"stars": None, "parallax_range": None, "model": "parallax"}
    same = survey_module._Settings(**plain)
    assert survey_module._load_checkpoint(folder, "NGC_1", same)["D"] > 0
    changes = ({"seed": 1}, {"parallax_range": (0.2, 3.0)}, {"num_samples": 9})
    for changed in (*changes, {"model": None}):
        settings = survey_module._Settings(**plain)
        settings = survey_module._Settings(**{**settings.__dict__, **changed})
        assert survey_module._load_checkpoint(folder, "NGC_1", settings) is None
    saved = json.loads((folder / "results" / "NGC_1.json").read_text())
    assert saved["row"]["status"] in ("ok", "unconverged")


def test_dask_local_cluster_matches_sequential(catalogue, sequential, tmp_path):
    table, _ = catalogue
    out = survey(table[[0, 2, 3]], tmp_path, mode="dask", workers=2, model="parallax")
    want = sequential[1][[0, 2, 3]]
    assert list(out["status"]) == list(want["status"])
    for name in ("D", "D_sd", "L", "Q", "sum_p_member", "quadrature_check"):
        np.testing.assert_allclose(out[name], want[name], rtol=1e-6)
    # The workers kept their compiled programs in this process's folder (the
    # test run's), where they found those of the sequential survey.
    assert not (tmp_path / "jax_cache").exists()


def test_workers_keep_their_programs_in_the_callers_cache_or_the_output(tmp_path):
    import jax

    mine = jax.config.jax_compilation_cache_dir  # the test run's (conftest)
    assert survey_module._worker_cache(tmp_path) == mine
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        folder = survey_module._worker_cache(tmp_path)
    finally:
        jax.config.update("jax_compilation_cache_dir", mine)
    assert folder == str((tmp_path / "jax_cache").resolve())


def test_processes_match_sequential(catalogue, sequential, tmp_path):
    table, _ = catalogue
    out = survey(table[[1, 4]], tmp_path, mode="processes", workers=1, model="parallax")
    want = sequential[1][[1, 4]]
    assert list(out["status"]) == list(want["status"])
    np.testing.assert_allclose(out["D"][:1], want["D"][:1], rtol=1e-6)


def test_batched_mode_recovers_truth(catalogue, tmp_path):
    table, truth = catalogue
    out = survey(table, tmp_path, mode="batched", batch_size=4, model="parallax")
    _check_truth(out, truth)
    _check_failures(out)
    meta = QTable.read(tmp_path / out["members_file"][1]).meta["GAIADIST"]
    assert json.loads(meta)["cluster_distance"]["batch"] == 3


def test_survey_command(catalogue, sequential, tmp_path, capsys):
    table, _ = catalogue
    path = tmp_path / "clusters.ecsv"
    table[[0, 3]].write(path)
    out = tmp_path / "out"
    assert main(["survey", str(path), "-o", str(out), "--model", "parallax"]) == 0
    printed = capsys.readouterr().out
    assert "1 fitted, 1 failed" in printed and "NGC 1" in printed
    got = QTable.read(out / "survey.ecsv")
    np.testing.assert_allclose(got["D"][0], sequential[1]["D"][0], rtol=1e-6)
    assert main(["survey", str(tmp_path / "none.ecsv"), "-o", str(out)]) == 2


def test_bad_catalogues_are_refused(tmp_path):
    with pytest.raises(InputError, match="'name' column"):
        survey(Table({"ra": [1.0]}), tmp_path)
    with pytest.raises(InputError, match="unique"):
        survey(Table({"name": ["A b", "A_b"], "file": ["x", "y"]}), tmp_path)
    with pytest.raises(InputError, match="ra, dec, radius"):
        survey(Table({"name": ["A"]}), tmp_path)
    with pytest.raises(InputError, match="mode must be"):
        survey(Table({"name": ["A"], "file": ["x"]}), tmp_path, mode="threads")
    with pytest.raises(InputError, match="empty"):
        survey(Table({"name": [], "file": []}), tmp_path)
    with pytest.raises(InputError, match="'radius' must be"):
        survey(Table({"name": ["A"], "ra": [1], "dec": [2], "radius": [3] * u.pc}), ".")
    with pytest.raises(InputError, match="template"):
        survey(Table({"name": ["A"]}), tmp_path, stars="{nosuch}.fits")


TAP_URL = os.environ.get("GAIADIST_TEST_TAP_URL")


@pytest.mark.skipif(TAP_URL is None, reason="no local TAP server")
def test_survey_queries_the_archive_and_survives_an_empty_cone(tmp_path):
    from gaiadist.query import conf

    from .test_query import FILE_COLUMNS

    m67 = SkyCoord(132.846 * u.deg, 11.814 * u.deg)
    table = QTable(
        {
            "name": ["M67", "nowhere"],
            "ra": [m67.ra.deg, 10.0] * u.deg,
            "dec": [m67.dec.deg, -60.0] * u.deg,
            "radius": [12.0, 1.0] * u.arcmin,
            "distance": [850.0, np.nan] * u.pc,
        }
    )
    with conf.set_temp("cache_dir", str(tmp_path / "cache")):
        query = {"tap_url": TAP_URL, "columns": FILE_COLUMNS}
        out = survey(table, tmp_path / "out", query=query)
    assert out["status"][1] == "failed" and "table is empty" in out["message"][1]
    assert out["status"][0] in ("ok", "unconverged")
    assert abs(out["D"][0] - 837 * u.pc) < 3 * out["D_sd"][0] + 3 * u.pc


def test_row_without_stars_or_position_fails_alone(tmp_path):
    table = Table({"name": ["A", "B"], "file": ["", str(tmp_path / "none.fits")]})
    out = survey(table, tmp_path / "out")
    assert list(out["status"]) == ["failed", "failed"]
    assert "no ra, dec, radius to query" in out["message"][0]
    assert "none.fits" in out["message"][1]


CLUSTERS = M67_PATH.parent / "clusters" / "clusters.ecsv"


@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_rows_with_a_cut_of_their_own_are_fitted_with_it(tmp_path, monkeypatch, mode):
    path = tmp_path / "field.ecsv"
    cluster_field(50, seed=1).write(path)
    table = Table(
        {
            "name": ["a", "b", "c", "d"],
            "file": [str(path)] * 4,
            "parallax_cut": ["parallax > 1.5", "", "0.2 < parallax <= 3", "x"],
        }
    )
    table["parallax_cut"] = np.ma.MaskedArray(
        table["parallax_cut"], mask=[False, False, False, True]
    )

    def fit(self, stars, parallax_range=None, **kwargs):
        raise RuntimeError(f"cut {parallax_range}")

    monkeypatch.setattr(ClusterDistance, "fit", fit)
    monkeypatch.setattr(ClusterDistance, "fit_many", fit)
    out = survey(table, tmp_path / "out", parallax_range=(0.1, 5), mode=mode)
    assert list(out["status"]) == ["failed"] * 4
    cuts = [m.split("cut ")[1].split(" (at ")[0] for m in out["message"]]
    assert cuts == ["(1.5, inf)", "(0.1, 5)", "(0.2, 3.0)", "(0.1, 5)"]


def test_catalogue_cuts_are_read_or_refused():
    names = ["a", "b", "c"]
    columns = Table(
        {
            "parallax_min": [0.5, np.nan, np.nan] * u.mas,
            "parallax_max": [2000.0, 3000.0, np.nan] * u.uas,
        }
    )
    cuts = survey_module._row_cuts(columns, names)
    assert cuts == [(0.5, 2.0), (-np.inf, 3.0), None]
    texts = Table({"parallax_cut": ["parallax>0.2 and parallax<3", "1 < parallax"]})
    assert survey_module._row_cuts(texts, names[:2]) == [(0.2, 3.0), (1.0, np.inf)]
    for bad, why in (
        ("plx > 2", "cannot read the parallax_cut 'plx > 2'"),
        ("parallax > 3 and parallax < 1", "is empty"),
    ):
        with pytest.raises(InputError, match=why):
            survey_module._row_cuts(Table({"parallax_cut": [bad]}), ["a"])
    with pytest.raises(InputError, match="cluster 'a': parallax_min 5 is not below"):
        survey_module._row_cuts(
            Table({"parallax_min": [5.0], "parallax_max": [1.0]}), ["a"]
        )


@pytest.mark.skipif(not CLUSTERS.exists(), reason="real cluster fields not found")
def test_survey_of_real_fields_from_their_catalogue_folder(tmp_path, monkeypatch):
    """The shipped catalogue's relative ``file`` paths, run from elsewhere.

    The real fields' FITS headers carry COMMENT cards, which once broke every
    members file; the catalogue's own ``n_stars`` (HR23 members) is kept.
    """
    catalogue = Table.read(CLUSTERS)
    small = catalogue[np.argsort(catalogue["rows"])[:1]]
    path = tmp_path / "cat" / "clusters.ecsv"
    path.parent.mkdir()
    os.symlink(CLUSTERS.parent / small["file"][0], path.parent / small["file"][0])
    # The same field again, without the stars within 5 sigma of its
    # cluster's proper motion (their errors and HR23's spread combined).
    ref = small[0]
    field = Table.read(CLUSTERS.parent / ref["file"])
    pm = {k: np.asarray(field[k], float) for k in field.colnames if "pm" in k}
    d = np.stack([pm["pmra"] - ref["pmra"], pm["pmdec"] - ref["pmdec"]])
    e = np.stack([pm["pmra_error"], pm["pmdec_error"]])
    a, c = e[0] ** 2 + ref["s_pmra"] ** 2, e[1] ** 2 + ref["s_pmdec"] ** 2
    b = pm["pmra_pmdec_corr"] * e[0] * e[1]
    m2 = (c * d[0] ** 2 - 2 * b * d[0] * d[1] + a * d[1] ** 2) / (a * c - b * b)
    field[m2 >= 25].write(path.parent / "cut.fits")
    small.add_row(ref)
    small["name"] = [small["name"][0], "without its cluster"]
    small["file"] = [small["file"][0], "cut.fits"]
    small.write(path)
    monkeypatch.chdir(tmp_path)
    out = survey(str(path), "out", num_warmup=100, num_samples=100)
    row = out[0]
    assert row["status"] in ("ok", "unconverged"), row["message"]
    assert row["detection"] > 50
    members = read_gaia(tmp_path / "out" / row["members_file"])
    assert members.meta["comments"] and "gaiadist" in members.meta
    np.testing.assert_array_equal(out["n_stars"], small["n_stars"])
    assert out["fit_n_stars"][0] == small["rows"][0]
    cut = out[-1]
    assert cut["status"] == "no cluster" and cut["message"].startswith("no cluster:")
    assert cut["detection"] < DETECTION_THRESHOLD
    assert np.isnan(cut["D"]) and cut["n_members"] == 0
    members = read_gaia(tmp_path / "out" / cut["members_file"])
    assert np.all(members["p_member"] == 0)


def test_a_cluster_whose_members_cannot_be_written_fails_alone(
    catalogue, tmp_path, monkeypatch
):
    table, _ = catalogue
    real = survey_module._write_atomic

    def broken(members, path):
        if path.stem.startswith("NGC_1"):
            raise AttributeError("'str' object has no attribute 'append'")
        real(members, path)

    monkeypatch.setattr(survey_module, "_write_atomic", broken)
    out = survey(table[:2], tmp_path, num_warmup=100, num_samples=100, model="parallax")
    assert out["status"][0] == "failed"
    assert "writing" in out["message"][0] and "AttributeError" in out["message"][0]
    assert out["status"][1] in ("ok", "unconverged") and out["members_file"][1]
