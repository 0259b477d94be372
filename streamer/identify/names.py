"""Person names: data, never paths, and safe to print.

A name reaches the store from the command line, from ``gallery.dir`` folder and file names, and (in
stores written before these checks) from anything at all. It is shown on terminals, written into
JSON and matched by operators, so it must be one visible line: no control or format characters
(newlines, ESC, NUL, bidi overrides), no path separators, no surrounding whitespace, a bounded
length, and never the prefix reserved for pseudo-identities. Nothing ever uses a name as a path:
``gallery export`` names folders by identity id (see :func:`slug`).
"""

from __future__ import annotations

import re
import unicodedata

from streamer.errors import StreamerError
from streamer.store.gallery import PSEUDO_PREFIX

MAX_NAME_CHARS = 128
SHOWN_CHARS = 60  # how much of a refused name an error message shows
SLUG_CHARS = 40
# Categories that must never be in a name: every C* (control, format, surrogate, private use,
# unassigned) and the Unicode line and paragraph separators, which break lines like a newline.
_FORBIDDEN_CATEGORIES = ("Zl", "Zp")


def check_person_name(name: str, where: str) -> str:
    """``name`` if it is acceptable as a person's name; otherwise a one-line StreamerError that starts
    with ``where`` (e.g. ``gallery enroll``, ``gallery.dir: <file>``) and shows the name escaped."""
    problem = name_problem(name)
    if problem:
        raise StreamerError(f"{printable(where)}: person name {shown(name)} {problem}")
    return name


def name_problem(name: str) -> str | None:
    """Why ``name`` is refused (a phrase), or None when it is fine."""
    if not isinstance(name, str) or not name.strip():
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters ({len(name)})"
    if any(_forbidden(c) for c in name):
        return "contains control or format characters (newline, escape, bidi override, ...)"
    if name != name.strip():
        return "starts or ends with whitespace"
    if "/" in name or "\\" in name:
        return "contains a path separator (/ or \\): names are data, not paths"
    if name in (".", ".."):
        return "is not a name"
    if name.startswith(PSEUDO_PREFIX):
        return f"starts with {PSEUDO_PREFIX!r}, kept for pseudo-identities (name one with 'streamer gallery name')"
    return None


def _forbidden(char: str) -> bool:
    category = unicodedata.category(char)
    return category.startswith("C") or category in _FORBIDDEN_CATEGORIES


def shown(name: str) -> str:
    """``name`` as an error or a listing shows an untrusted name: quoted, escaped (``ascii``), cut short,
    so a terminal escape or newline in it is never printed raw."""
    text = ascii(name)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def printable(text: str) -> str:
    """``text`` with control and format characters escaped, everything else as is: for paths and
    other context printed next to a name (``gallery.dir: <file>``)."""
    return "".join(ascii(c)[1:-1] if _forbidden(c) else c for c in text)


def slug(name: str) -> str:
    """An ASCII fragment of ``name`` for a folder name next to the identity id: only [A-Za-z0-9_-],
    at most 40 characters, possibly empty. Never the whole folder name: ids keep folders unique."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_name).strip("_-")[:SLUG_CHARS].strip("_-")
