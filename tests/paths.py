"""Where the tests find the repository and the shared test data."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
FACES = SHARED / "data" / "faces" / "identities"
