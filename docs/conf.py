"""Sphinx configuration for the gaiadist documentation."""

project = "gaiadist"
author = "gaiadist developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx"]
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "astropy": ("https://docs.astropy.org/en/stable/", None),
    "numpyro": ("https://num.pyro.ai/en/stable/", None),
}
napoleon_google_docstring = False
html_theme = "alabaster"
