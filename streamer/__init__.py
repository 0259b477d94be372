"""streamer: finds occluded faces in video streams, reconstructs them and re-identifies the person."""

__version__ = "0.1.0"
