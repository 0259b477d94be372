"""Training the project's own models (offline: from model yamls, on datasets the project builds)."""
