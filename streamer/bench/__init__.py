"""``streamer bench``: decode ceiling, each stage across batch sizes, end to end over streams and faces
per frame, the loop a user would write (same models) as the baseline, real-time capacity; a JSON
report, a Markdown table and PNG plots. Each measurement runs in a fresh process (``worker``), so
its peak memory is its own."""
