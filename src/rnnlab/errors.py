"""Errors rnnlab raises on bad input; each message names the problem and how to fix it."""


class RnnlabError(Exception):
    """Base class: an error a user can act on (shown without a traceback by the entry points)."""


class ConfigError(RnnlabError):
    """A configuration value is missing or not allowed."""


class DataSourceError(RnnlabError):
    """The data source cannot be reached or read."""


class ChecksumError(DataSourceError):
    """A downloaded or mirrored file does not have the expected sha256."""


class ArchiveError(DataSourceError):
    """An archive is truncated, corrupt, or holds unsafe members."""


class LayoutError(DataSourceError):
    """Extracted data lacks the expected folders or columns."""


class MissingInputError(RnnlabError):
    """A stage's input (an earlier stage's output) is not there."""
