"""Building blocks shared by every config class (kept apart so stage backends can import them cheaply)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# What a user-given name (a stream's, an alert's) may be: it is data, used in file names and topics, never a path.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class StrictModel(BaseModel):
    """Unknown keys are errors; values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _existing_file(path: Path) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    return path


def _existing_dir(path: Path) -> Path:
    path = path.expanduser()
    if not path.is_dir():
        raise ValueError(f"directory not found: {path}")
    return path


def _auto_or_existing_file(value: str | Path) -> str | Path:
    return value if value == "auto" else _existing_file(value)


ExistingPath = Annotated[Path, AfterValidator(_existing_file)]
# "auto" (the setting's own choice) or a file that exists; one error naming the file, not one per kind of value.
AutoOrExistingPath = Annotated[Literal["auto"] | Path, Field(union_mode="left_to_right"),
                               AfterValidator(_auto_or_existing_file)]
ExistingDir = Annotated[Path, AfterValidator(_existing_dir)]
