"""Per-stream face tracking."""
