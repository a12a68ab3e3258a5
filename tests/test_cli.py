import numpy as np
import pytest
from astropy.table import QTable, Table

from gaiadist.cli import main


def test_stars_command_on_m67(m67_path, tmp_path, capsys):
    out_file = tmp_path / "m67.ecsv"
    with pytest.warns(Warning, match="outside the validity"):
        assert main(["stars", str(m67_path), "-o", str(out_file)]) == 0
    printed = capsys.readouterr().out
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


def test_stars_command_errors_are_one_line(tmp_path, capsys):
    t = Table({"parallax": [1.0, 2.0], "parallax_error": [0.1, 0.2]})
    path = tmp_path / "in.ecsv"
    t.write(path)
    assert main(["stars", str(tmp_path / "missing.fits")]) == 2
    assert "cannot read a table" in capsys.readouterr().err
    out = tmp_path / "out.ecsv"
    assert main(["stars", str(path), "-o", str(out), "--length-scale", "3 mas"]) == 2
    assert "length_scale is in mas" in capsys.readouterr().err
    with pytest.warns(Warning, match="no parallax zero point"):
        assert main(["stars", str(path), "-o", str(out)]) == 0
    assert "zero point: not applied" in capsys.readouterr().out
    assert main(["stars", str(path), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
