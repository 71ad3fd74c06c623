"""Credentials for a library's server: from an Airflow connection or the
environment, never from sources.toml, never logged.

A library names a connection id in `conn_id`. The environment variable
`UNIONCAT_CONN_<CONN_ID>` (upper-cased, `-`/`.` as `_`) may hold
`user:password`; otherwise, when Airflow is configured, the Airflow connection
of that id is used (its login and password).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from unioncat.registry import Library


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = ""

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"Credentials(user={self.user!r}, password=***)"

    def as_tuple(self) -> tuple[str, str]:
        return (self.user, self.password)


def environment_variable(conn_id: str) -> str:
    return "UNIONCAT_CONN_" + re.sub(r"[^A-Za-z0-9]", "_", conn_id).upper()


def credentials_for(library: Library) -> Credentials | None:
    if not library.conn_id:
        return None
    value = os.environ.get(environment_variable(library.conn_id))
    if value is not None:
        user, _, password = value.partition(":")
        return Credentials(user, password)
    try:
        from airflow.sdk import Connection

        connection = Connection.get(library.conn_id)
    except Exception as error:  # Airflow absent or connection missing: say which, not the secret
        raise LookupError(
            f"{library.id}: no credentials for conn_id {library.conn_id!r}: set {environment_variable(library.conn_id)} "
            f"or create the Airflow connection ({type(error).__name__})"
        ) from None
    return Credentials(connection.login or "", connection.password or "")
