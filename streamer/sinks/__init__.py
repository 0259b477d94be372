"""Outputs: annotated video files and the events log."""
