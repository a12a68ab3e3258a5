import shutil
import tempfile
from pathlib import Path

import pytest
from astropy.table import Table

M67_PATH = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / ("m67_gaiadr3.fits.gz")
)


def pytest_configure(config):
    """Give this run's JAX a compilation cache folder of its own.

    The ``gaiadist`` command turns JAX's persistent compilation cache on, in
    ``~/.gaiadist/cache/jax`` unless the process already has a folder; the
    CLI tests run it in this process, which must not write to the home folder.
    """
    import jax

    config._gaiadist_jax_cache = tempfile.mkdtemp(prefix="gaiadist-test-jax-")
    jax.config.update("jax_compilation_cache_dir", config._gaiadist_jax_cache)


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_gaiadist_jax_cache", ""), ignore_errors=True)


#: Short chains for command-line tests of the cluster fit.
FAST = ["--num-warmup", "100", "--num-samples", "100"]


def small_field(tmp_path, n=400, **kwargs):
    """A simulated cluster field of ``n`` stars (300 pc), written to a FITS file."""
    import astropy.units as u

    from gaiadist.columns import write_table
    from gaiadist.simulate import cluster_field

    stars = cluster_field(n, distance=300 * u.pc, size=3 * u.pc, seed=1, **kwargs)
    path = tmp_path / "field.fits"
    write_table(stars, path)
    return path


@pytest.fixture(scope="session")
def m67_path():
    """The real Gaia DR3 M67 field; tests using it skip when it is absent."""
    if not M67_PATH.exists():
        pytest.skip(f"real data not found at {M67_PATH}")
    return M67_PATH


@pytest.fixture
def m67(m67_path):
    return Table.read(m67_path)
