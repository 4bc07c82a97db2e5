"""Sphinx configuration for nemesis_bkg."""

from importlib.metadata import version as _version

project = "nemesis_bkg"
author = "nemesis_bkg developers"
copyright = "2026, nemesis_bkg developers"
release = _version("nemesis_bkg")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_automodapi.automodapi",
    "numpydoc",
]
numpydoc_show_class_members = False
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
nitpicky = False

# CI has no network, so no intersphinx inventories: cross-references to numpy/astropy
# stay plain text rather than failing the -W build.
automodapi_inheritance_diagram = False

html_theme = "pydata_sphinx_theme"
html_title = "nemesis_bkg"
exclude_patterns = ["_build"]
