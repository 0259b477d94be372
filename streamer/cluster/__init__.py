"""Many cameras on many machines: Ray places one worker actor per share of the cameras, each running the
whole runtime (decode → track → analyse → identify → store) for its cameras, and restarts a lost one on a
machine that is left. Every worker shares one PostgreSQL store and gallery (streamer/store/postgres.py)."""
