"""Matching face embeddings to known identities."""
