"""HTTP for harvesters (OAI-PMH, SRU): what sickle lacks.

Every request has a connect and read timeout, a deadline for the whole
response (a server trickling a byte at a time never trips a read timeout)
and a size cap; 408/429/5xx
and connection failures are retried with exponential backoff honouring
`Retry-After`; the body is returned as bytes, exactly as received, for the
landing zone. Credentials come from `harvesters.credentials` and are never
put into error messages.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests
import urllib3

from harvesters.errors import RetryableHarvestError, TerminalHarvestError

log = logging.getLogger("unioncat.harvest")

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_bytes: int = 64 * 1024 * 1024
    attempts: int = 5
    backoff: float = 1.0  # seconds, doubled per attempt
    max_wait: float = 120.0  # cap on one Retry-After / backoff wait
    deadline: float = 600.0  # seconds for one whole response, however it trickles in


class SlowResponse(Exception):
    """The response did not arrive whole within the policy's deadline."""


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdecimal():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _read_capped(response: requests.Response, library_id: str, url: str, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdecimal() and int(declared) > max_bytes:
        raise TerminalHarvestError(library_id, f"{url}: response of {int(declared):,} bytes exceeds the {max_bytes:,}-byte cap")
    chunks, size = [], 0
    # read1 returns what one socket read brings (iter_content waits for a full chunk), so the
    # deadline is checked however slowly the bytes come.
    while chunk := response.raw.read1(1 << 16, decode_content=True):
        if time.monotonic() > deadline:
            raise SlowResponse(f"not complete after {size:,} bytes")
        size += len(chunk)
        if size > max_bytes:
            raise TerminalHarvestError(library_id, f"{url}: response exceeds the {max_bytes:,}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


def get(
    session: requests.Session,
    url: str,
    params: dict,
    *,
    library_id: str,
    policy: HttpPolicy = HttpPolicy(),
    auth: tuple[str, str] | None = None,
    sleep=time.sleep,
) -> tuple[int, bytes]:
    """GET `url` with `params`, retrying transient failures; return the status
    and body of the first answer that is not transient (4xx bodies included:
    OAI-PMH servers put their error codes in them)."""
    last_error = "no attempt made"
    for attempt in range(policy.attempts):
        wait = min(policy.backoff * 2**attempt, policy.max_wait)
        deadline = time.monotonic() + policy.deadline
        try:
            with session.get(url, params=params, auth=auth, stream=True, timeout=(policy.connect_timeout, policy.read_timeout)) as response:
                if response.status_code not in RETRY_STATUSES:
                    return response.status_code, _read_capped(response, library_id, url, policy.max_bytes, deadline)
                last_error = f"HTTP {response.status_code}"
                wait = min(_retry_after(response) or wait, policy.max_wait)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError) as error:  # urllib3's own: raised while the body is read
            last_error = type(error).__name__
        except SlowResponse as error:
            last_error = f"{policy.deadline:g} s deadline passed, {error}"
        if attempt + 1 < policy.attempts:  # in the task log: a harvest that recovers still shows its trouble
            log.warning("%s: %s: %s; attempt %d of %d, next in %.1f s", library_id, url, last_error, attempt + 1, policy.attempts, wait)
            sleep(wait)
    raise RetryableHarvestError(library_id, f"{url}: gave up after {policy.attempts} attempts ({last_error})")


def fetch(session: requests.Session, url: str, params: dict, *, library_id: str, policy: HttpPolicy = HttpPolicy(),
          auth: tuple[str, str] | None = None, sleep=time.sleep) -> bytes:
    """Like `get`, but any 4xx/5xx answer is a terminal error; returns the body."""
    status, body = get(session, url, params, library_id=library_id, policy=policy, auth=auth, sleep=sleep)
    if status >= 400:
        raise TerminalHarvestError(library_id, f"{url}: HTTP {status}")
    return body
