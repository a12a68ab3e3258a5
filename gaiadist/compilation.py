"""JAX's persistent compilation cache, for gaiadist's compiled programs.

A cluster fit runs three compiled programs (mode search, sampler, per-star
results) whose compilation takes most of a first fit's time. JAX can keep
compiled programs on disk, so that another process with arrays of the same
shapes loads them instead of compiling again. This is a setting of the whole
process, so gaiadist leaves it to the caller: the ``gaiadist`` command and
the worker processes of `gaiadist.survey` turn it on; a script or notebook
turns it on with `use_compilation_cache`.
"""

from __future__ import annotations

from pathlib import Path

import jax
from astropy.config import get_cache_dir

__all__ = ["default_compilation_cache", "use_compilation_cache"]

#: Programs that compile faster than this (seconds) are not written to disk.
MIN_COMPILE_SECONDS = 0.5


def default_compilation_cache() -> Path:
    """The folder used when none is given: ``jax`` in gaiadist's cache folder.

    That is astropy's cache folder for gaiadist: ``~/.cache/gaiadist`` with
    current astropy (``~/.gaiadist/cache`` with older versions).
    """
    return Path(get_cache_dir("gaiadist")) / "jax"


def use_compilation_cache(path: str | Path | None = None) -> Path:
    """Keep this process's compiled JAX programs on disk, and reuse them.

    After this, the first fit of a cluster in a new Python process loads the
    programs compiled by an earlier process (for clusters in the same padded
    size class, on the same machine and JAX version) instead of compiling
    them: for M67 (4,300 stars) on a 2-core CPU, 5.5 s instead of 10 s.

    Parameters
    ----------
    path : str or `~pathlib.Path`, optional
        Folder of the cache; `default_compilation_cache` when not given.

    Returns
    -------
    `~pathlib.Path`
        The folder in use. If JAX already had a cache folder (set by the
        caller, ``JAX_COMPILATION_CACHE_DIR`` or an earlier call), that one
        stays in use and is returned: the setting belongs to the process.

    Notes
    -----
    The setting applies to every JAX program of the process that takes longer
    than 0.5 s to compile, not only gaiadist's. The folder is safe to delete.
    """
    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    folder = Path(path) if path is not None else default_compilation_cache()
    folder = folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder
