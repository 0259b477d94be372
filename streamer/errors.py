"""The one error type a user sees: a single line that names the culprit."""


class StreamerError(Exception):
    """A problem the user can fix (bad config, missing model, unreadable source).

    The CLI prints ``error: <message>`` and exits non-zero, without a traceback,
    so the message must name what is wrong: a file, a URL, a config key path.
    """


class ConfigError(StreamerError):
    pass


class ModelError(StreamerError):
    pass


class SourceError(StreamerError):
    pass


class OutputError(StreamerError):
    """An output cannot be written (a full disk, a folder that is not writable): the run stops cleanly."""
