"""Whether a file gave every frame it holds: a file cut short, or damaged in the middle, is said loudly.

Only files and image folders are judged: a camera has no total, and its damage is counted live.
"""

from __future__ import annotations

from streamer.sources import ThreadedSource

# An estimated total (from the container's duration, not its frame index) may be off by a frame or two.
ESTIMATE_SLACK = 2


def missing_frames(source: ThreadedSource) -> list[str]:
    """One line per problem: frames that never came, frames skipped after damage, images unreadable."""
    if source.live or source.error:
        return []  # a failed source is already reported as an error
    stats, lines = source.stats, []
    expected = source.total_frames
    accounted = stats.decoded + stats.skipped_damaged
    slack = 0 if source.total_exact else ESTIMATE_SLACK
    if expected and accounted + slack < expected:
        lines.append(f"source {source.name!r}: {source.display_uri} ended after {stats.decoded} of {expected} frames: "
                     f"{expected - accounted} missing (the file is cut short or its end is damaged)")
    if stats.skipped_damaged:
        lines.append(f"source {source.name!r}: {stats.skipped_damaged} frames skipped after damage in "
                     f"{source.display_uri} ({stats.decode_errors} damaged packets or frames)")
    elif stats.decode_errors:
        lines.append(f"source {source.name!r}: {stats.decode_errors} damaged packets, frames or images in "
                     f"{source.display_uri}")
    return lines
