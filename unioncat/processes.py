"""Worker processes for the stages that use both cores.

Workers start from a forkserver, never by forking the caller: the caller may be a
long-lived process with threads of its own (DuckDB's scheduler, rapidfuzz's pool, a
harvester's prefetcher, an Airflow task runner). A fork copies the locks those threads
hold but not the threads, and a worker that needs such a lock waits for ever; the pool
then waits for the worker, and so does whoever called it. As with any start method but fork,
a script of one's own that calls `run_all` or the scale generator must keep its work under
`if __name__ == "__main__":` (a worker imports the script).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def process_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=max(workers, 1), mp_context=multiprocessing.get_context("forkserver"))
