"""Sphinx configuration for nemesis_bkg."""

import doctest
import os
import sys
from importlib.metadata import version as _version
from pathlib import Path

# The examples run at build time on 2 shared cores: keep torch and BLAS modest.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
DOCS = Path(__file__).parent
# Docs-only Sphinx extensions, and the helper module of the multi-band examples.
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS / "_examples"))

project = "nemesis_bkg"
author = "nemesis_bkg developers"
copyright = "2026, nemesis_bkg developers"
release = _version("nemesis_bkg")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_automodapi.automodapi",
    "sphinx_automodapi.smart_resolver",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "nemesis_cli_help",
    "nemesis_bench_report",
]

# `single backticks` are Python objects, as in astropy and photutils.
default_role = "obj"
numpydoc_show_class_members = False
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
automodapi_inheritance_diagram = False
nitpicky = False
# No network at build time: no intersphinx inventories. References to numpy,
# astropy or photutils objects stay plain code text instead of links.

exclude_patterns = ["_build", "_ext", "_examples"]

# Figures are made at build time from the code shown next to them.
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 90)]
plot_pre_code = "import numpy as np\nimport matplotlib.pyplot as plt\n"
plot_rcparams = {"figure.figsize": (8.0, 3.2), "image.origin": "lower", "image.cmap": "magma"}
plot_apply_rcparams = True

# Only the explicit ``.. doctest::`` blocks of the .rst pages are run by the doctest
# builder; the docstrings' examples are run by pytest (--doctest-modules).
doctest_test_doctest_blocks = ""
# Tables print with trailing blanks; compare them without.
doctest_default_flags = (doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL
                         | doctest.DONT_ACCEPT_TRUE_FOR_1 | doctest.NORMALIZE_WHITESPACE)
# Doctests of the .rst pages (sphinx-build -b doctest docs docs/_build/doctest) run in a
# scratch folder, so the files they write never land in the source tree.
doctest_global_setup = """
import os as _os
import tempfile as _tempfile
_docs_cwd = _os.getcwd()
_docs_tmp = _tempfile.TemporaryDirectory()
_os.chdir(_docs_tmp.name)
"""
doctest_global_cleanup = """
_os.chdir(_docs_cwd)
_docs_tmp.cleanup()
"""

html_theme = "pydata_sphinx_theme"
html_title = f"nemesis_bkg {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_context = {"default_mode": "light"}
