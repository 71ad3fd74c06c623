"""Harvest errors split the way a scheduler needs them: retry or give up."""


class HarvestError(Exception):
    """Base class; `library_id` names the source."""

    def __init__(self, library_id: str, message: str):
        super().__init__(f"{library_id}: {message}")
        self.library_id = library_id


class RetryableHarvestError(HarvestError):
    """A transient failure (timeout, reset, 5xx): trying again may succeed."""


class TerminalHarvestError(HarvestError):
    """A failure that retrying cannot fix (missing folder, bad configuration)."""
