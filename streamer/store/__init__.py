"""The embedded store: gallery, tracks and sightings in one SQLite database (WAL)."""
