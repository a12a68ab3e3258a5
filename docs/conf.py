"""Sphinx configuration for the gaiadist documentation."""

project = "gaiadist"
author = "gaiadist developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_nb"]
# Tutorials are MyST notebooks, executed at every build; a failing cell fails it.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 600
# numpyro imports tqdm.auto, which complains on stderr that ipywidgets is absent.
nb_output_stderr = "remove"
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath", "amsmath"]
napoleon_google_docstring = False
html_theme = "alabaster"
