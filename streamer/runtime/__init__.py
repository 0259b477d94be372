"""The runtime: a run's loop, its streams' state and lifecycle, and how it starts, stops and reports."""

from streamer.runtime.run import run
from streamer.runtime.summary import RunSummary

__all__ = ["RunSummary", "run"]
