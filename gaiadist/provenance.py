"""What gaiadist records in ``table.meta`` about how a result was made."""

from __future__ import annotations

from importlib import metadata

from astropy.table import Table

__all__ = ["package_versions", "record"]

_PACKAGES = ("gaiadist", "jax", "jaxlib", "numpyro", "astropy", "numpy")


def package_versions() -> dict[str, str]:
    """Versions of gaiadist and the packages its numbers depend on."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def record(table: Table, step: str, settings: dict) -> None:
    """Store ``settings`` and package versions under ``table.meta["gaiadist"][step]``.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The output table, changed in place.
    step : str
        Name of the step, e.g. ``"star_distance"``.
    settings : dict
        Plain values (numbers, strings, lists) describing the step.
    """
    entry = dict(settings)
    entry["versions"] = package_versions()
    table.meta.setdefault("gaiadist", {})[step] = entry
