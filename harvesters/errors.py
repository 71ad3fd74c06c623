"""Harvest errors split the way a scheduler needs them: retry or give up.

Their messages end up in logs, the state file and `unioncat status`, so any
`user:password@` in a URL they quote is redacted."""

import re

_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """`text` with the userinfo of any URL (`http://user:password@host`) replaced by `***@`."""
    return _URL_CREDENTIALS.sub("***@", text)


class HarvestError(Exception):
    """Base class; `library_id` names the source."""

    def __init__(self, library_id: str, message: str):
        super().__init__(redact(f"{library_id}: {message}"))
        self.library_id = library_id
        self.message = redact(message)  # what a worker process sends back: no credentials either

    def __reduce__(self):  # raised in a worker process, re-raised in the caller
        return type(self), (self.library_id, self.message)


class RetryableHarvestError(HarvestError):
    """A transient failure (timeout, reset, 5xx): trying again may succeed."""


class TerminalHarvestError(HarvestError):
    """A failure that retrying cannot fix (missing folder, bad configuration)."""
