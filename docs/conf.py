"""Sphinx configuration of the optuna-nas documentation (built with warnings as errors)."""

from __future__ import annotations

import optuna_nas

project = "optuna-nas"
author = "the optuna-nas developers"
copyright = "2026, the optuna-nas developers"
release = optuna_nas.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options: dict[str, object] = {}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Cross-references into PyTorch, Optuna and BoTorch are written in the docstrings for
# readers of the source; without network access at build time they stay plain text.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
nitpicky = False
suppress_warnings = ["myst.xref_missing"]

html_theme = "alabaster"
html_title = "optuna-nas"
