import os
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


#: Where the test processes share one JAX compilation cache: set by the
#: first process (pytest-xdist's controller, or pytest alone) for its workers.
_SHARED_CACHE = "GAIADIST_TEST_JAX_CACHE"


def pytest_configure(config):
    """Give this run's JAX a compilation cache folder of its own, shared by its workers.

    The ``gaiadist`` command turns JAX's persistent compilation cache on, in
    ``~/.gaiadist/cache/jax`` unless the process already has a folder; the
    CLI tests run it in this process, which must not write to the home
    folder. Most of the tests' time is compilation, and pytest-xdist's
    workers compile many of the same programs: with one folder, the second
    worker loads what the first compiled. A size limit makes JAX lock the
    folder (with filelock) while it reads and writes, and record when each
    entry was last used, which it reads back for every entry whenever it
    writes one. The limit goes into the environment too: the processes that
    `gaiadist.survey` starts (``mode="processes"``, dask) read it from
    there, and without it they would write entries with no such record, on
    which the next write in a process with the limit fails
    (``FileNotFoundError`` on a ``-atime`` file).
    """
    import jax

    folder = os.environ.get(_SHARED_CACHE)
    if folder is None:
        folder = tempfile.mkdtemp(prefix="gaiadist-test-jax-")
        os.environ[_SHARED_CACHE] = folder
        config._gaiadist_jax_cache = folder
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(16 << 30)
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_compilation_cache_max_size", 16 << 30)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)


#: Test files run longest first, so that pytest-xdist's two workers end
#: together (``--no-loadscope-reorder`` keeps this order; xdist's own puts
#: the files with the most tests first). Measured on 2 cores, in seconds of
#: one worker: test_cluster 480, test_survey 480, test_cli_cluster 435,
#: test_cluster_astrometric 305, test_likelihood 165, test_selection 145,
#: test_cli 120; the rest under 90 each, in collection order after these.
#: Each worker is given two files to start with: test_cli_cluster then runs
#: after test_survey on the same worker, and loads the astrometric programs
#: that test_survey's real fields compiled. In xdist's order test_cli_cluster
#: started last and one worker idled for 170 s.
_LONGEST_FIRST = (
    "test_cluster.py",
    "test_survey.py",
    "test_cluster_astrometric.py",
    "test_cli_cluster.py",
    "test_likelihood.py",
    "test_selection.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(config, items):
    """Order the test files longest first (`_LONGEST_FIRST`), the rest after."""

    def rank(item):
        name = item.path.name
        return (
            _LONGEST_FIRST.index(name)
            if name in _LONGEST_FIRST
            else len(_LONGEST_FIRST)
        )

    items.sort(key=rank)  # stable: each file's tests keep their order


def pytest_unconfigure(config):
    folder = getattr(config, "_gaiadist_jax_cache", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_SHARED_CACHE, None)


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
