"""Whether a file gave every frame it holds: a file cut short, or damaged in the middle, is said loudly.

Only files and image folders are judged: a camera has no total, and its damage is counted live.
"""

from __future__ import annotations

from streamer.sources import ThreadedSource


def missing_frames(source: ThreadedSource) -> list[str]:
    """One line per problem: frames that never came, frames skipped after damage, images unreadable."""
    if source.live or source.error:
        return []  # a failed source is already reported as an error
    stats, lines = source.stats, []
    # Only a container's own frame count is trusted: one estimated from its duration can be off by far
    # (audio longer than the video, variable frame rates), and a false alarm is as bad as none.
    expected = source.total_frames if source.total_exact else None
    accounted = stats.decoded + stats.skipped_damaged
    if expected and accounted < expected:
        lines.append(f"source {source.name!r}: {source.display_uri} ended after {stats.decoded} of {expected} frames: "
                     f"{expected - accounted} missing (the file is cut short or its end is damaged)")
    if stats.skipped_damaged:
        lines.append(f"source {source.name!r}: {stats.skipped_damaged} frames skipped after damage in "
                     f"{source.display_uri} ({stats.decode_errors} damaged packets or frames)")
    elif stats.decode_errors:
        lines.append(f"source {source.name!r}: {stats.decode_errors} damaged packets, frames or images in "
                     f"{source.display_uri}")
    return lines
