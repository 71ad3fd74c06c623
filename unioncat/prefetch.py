"""An iterator read ahead by a thread of its own.

I/O and Arrow/DuckDB work release the GIL, so a consumer working on one item overlaps the
production of the next: the OAI-PMH harvest fetches the next page while it lands the last,
dedup merges the next rows of `record_manifestation` while it writes the last.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from queue import Full, Queue


def prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """`items`, produced by a background thread up to `depth` ahead; its exceptions re-raised here."""
    queue: Queue = Queue(maxsize=depth)
    stopped, done = threading.Event(), object()

    def offer(item) -> bool:
        while not stopped.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((done, None))
        except BaseException as error:  # handed to the consumer, raised there
            offer((None, error))

    threading.Thread(target=produce, name="prefetch", daemon=True).start()
    try:
        while True:
            item, error = queue.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stopped.set()
