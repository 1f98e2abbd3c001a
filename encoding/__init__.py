"""Compiled weights and programs as fixed-shape arrays for the meta-model."""
