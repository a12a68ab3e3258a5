"""Sphinx configuration for the gaiadist documentation."""

import os
from pathlib import Path

from gaiadist import __version__

project = "gaiadist"
author = "gaiadist developers"
copyright = "2026, gaiadist developers"
version = release = __version__
html_title = f"gaiadist {release}"
# The tutorials read the real M67 field from this folder when it exists.
os.environ.setdefault(
    "GAIADIST_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")
)
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_nb"]
# Tutorials are MyST notebooks, executed at every build; a failing cell fails it.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 600
# numpyro imports tqdm.auto, which complains on stderr that ipywidgets is absent.
nb_output_stderr = "show"
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath", "amsmath"]
napoleon_google_docstring = False
html_theme = "alabaster"
