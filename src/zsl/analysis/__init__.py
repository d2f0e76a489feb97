"""Analyses that reproduce papers' figures (PNG) and tables (markdown); see :mod:`zsl.analysis.cpl`."""
