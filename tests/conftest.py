from pathlib import Path

import pytest
from astropy.table import Table

M67_PATH = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / ("m67_gaiadr3.fits.gz")
)


@pytest.fixture(scope="session")
def m67_path():
    """The real Gaia DR3 M67 field; tests using it skip when it is absent."""
    if not M67_PATH.exists():
        pytest.skip(f"real data not found at {M67_PATH}")
    return M67_PATH


@pytest.fixture
def m67(m67_path):
    return Table.read(m67_path)
