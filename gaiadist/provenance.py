"""What gaiadist records in ``table.meta`` about how a result was made."""

from __future__ import annotations

from importlib import metadata

import numpy as np
from astropy.table import Table

from .columns import decode_json_meta

__all__ = ["describe_distribution", "package_versions", "record"]

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
    # A FITS file gaiadist wrote, read by astropy itself, holds the earlier
    # record as JSON text: one record, not a second one beside it.
    table.meta = decode_json_meta(table.meta)
    table.meta.setdefault("gaiadist", {})[step] = entry


def describe_distribution(distribution) -> str:
    """A NumPyro distribution as readable, stable text.

    The class name and its parameters, such as ``"Normal(loc=6.8244,
    scale=2)"``: the same for equal distributions in every process, unlike
    ``repr``, which shows a memory address.

    Parameters
    ----------
    distribution : `numpyro.distributions.Distribution`
        The distribution; a transformed one is written as its base
        distribution and the names of its transforms.
    """
    parts = []
    base = getattr(distribution, "base_dist", None)
    if base is not None:  # transformed, truncated, masked, ...
        parts.append(describe_distribution(base))
    for name in getattr(distribution, "arg_constraints", {}):
        if hasattr(distribution, name):
            parts.append(f"{name}={_number_text(getattr(distribution, name))}")
    transforms = getattr(distribution, "transforms", None)
    if transforms:
        names = ", ".join(type(t).__name__ for t in transforms)
        parts.append(f"transforms=[{names}]")
    return f"{type(distribution).__name__}({', '.join(parts)})"


def _number_text(value) -> str:
    """Numbers with 6 significant digits; arrays as lists of them."""
    values = np.asarray(value, dtype=float)
    if values.ndim == 0:
        return f"{float(values):.6g}"
    return "[" + ", ".join(f"{v:.6g}" for v in values.ravel()) + "]"
