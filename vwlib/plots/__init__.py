"""Figures from result tables: matplotlib only, never a model."""
