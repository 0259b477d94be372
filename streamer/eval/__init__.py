"""Evaluations of the project's models on held-out data."""
