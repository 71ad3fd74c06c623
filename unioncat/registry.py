"""The source registry: which libraries to harvest, how, and from where (`sources.toml`).

`validate_registry` reports every problem of a registry file in one pass, each with
the 1-based line it came from; `load_registry` turns a valid file into a `Registry`.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROTOCOLS = ("oai", "sru", "z3950", "file")
SYNTAXES = ("cnmarc", "unimarc", "marc21", "marcxml", "dc", "auto")
ENCODINGS = ("auto", "utf-8", "gb18030", "gbk", "gb2312", "marc-8", "iso-8859-1")
LEVELS = ("province", "city", "county")

REQUIRED_KEYS = ("id", "name", "city", "level", "protocol", "endpoint")
OPTIONAL_KEYS = ("set", "syntax", "encoding", "schedule", "enabled", "conn_id")
_KNOWN_KEYS = REQUIRED_KEYS + OPTIONAL_KEYS
_CHOICES = {"level": LEVELS, "protocol": PROTOCOLS, "syntax": SYNTAXES, "encoding": ENCODINGS}
_SCHEDULE_PRESETS = ("@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
_TOML_TYPES = {str: "string", bool: "boolean", int: "integer", float: "float", list: "array", dict: "table"}

_LIBRARY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
_Z3950_ENDPOINT = re.compile(r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})/\S+")
_CREDENTIALS = re.compile(  # user:password@host, or password=... in a query string
    r"(^|://)[^/@\s:]+:[^/@\s]*@|(?<![a-z])(password|passwd|pwd|secret|token|api_?key)=", re.IGNORECASE
)
_CREDENTIALS_MESSAGE = (
    "credentials belong in an Airflow connection (conn_id) or the environment, not in sources.toml"
)

_HEADER_LINE = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?")
_KEY_LINE = re.compile(r"""\s*["']?([A-Za-z0-9_-]+)["']?\s*=""")
_TOML_ERROR_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


@dataclass(frozen=True)
class Library:
    """One library of the union catalogue, as described by a `[[library]]` table."""

    id: str
    name: str
    city: str
    level: str
    protocol: str
    endpoint: str
    syntax: str = "auto"
    encoding: str = "auto"
    set: str | None = None
    schedule: str | None = None
    enabled: bool = True
    conn_id: str | None = None
    base_dir: Path = Path(".")

    def endpoint_path(self) -> Path:
        """The drop folder or file of a `file` source; a relative endpoint resolves against `base_dir`."""
        if self.protocol != "file":
            raise ValueError(f"{self.id}: endpoint_path() is for file sources, not {self.protocol!r}")
        return self.base_dir / Path(self.endpoint).expanduser()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a registry file; `line` is 1-based, 0 when it concerns the whole file."""

    path: Path
    line: int
    library_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path.name}:{self.line}" if self.line else self.path.name
        library = f" {self.library_id}:" if self.library_id else ""
        return f"{where}:{library} {self.message}"


class RegistryError(Exception):
    """A registry file has problems; `.problems` holds all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class Registry:
    path: Path
    libraries: tuple[Library, ...]

    def enabled(self) -> tuple[Library, ...]:
        return tuple(library for library in self.libraries if library.enabled)

    def get(self, library_id: str) -> Library:
        for library in self.libraries:
            if library.id == library_id:
                return library
        raise KeyError(f"no library with id {library_id!r} in {self.path}")


def validate_registry(path: Path) -> list[Problem]:
    """Every problem of the registry at `path`, sorted by line; an empty list means it is valid."""
    return _inspect(path)[0]


def load_registry(path: Path) -> Registry:
    """The registry at `path`; raises `RegistryError` listing every problem if it is not valid."""
    problems, tables = _inspect(path)
    if problems:
        raise RegistryError(problems)
    base_dir = path.absolute().parent
    return Registry(path, tuple(Library(**table, base_dir=base_dir) for table in tables))


@dataclass
class _TableLines:
    """Where a `[[library]]` table starts and on which line each of its keys is set."""

    header: int
    keys: dict[str, int] = field(default_factory=dict)

    def of(self, key: str) -> int:
        return self.keys.get(key, self.header)


def _inspect(path: Path) -> tuple[list[Problem], list[dict[str, Any]]]:
    """The problems of the registry at `path` and its `[[library]]` tables as parsed."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return [Problem(path, 0, None, "file not found")], []
    except (OSError, UnicodeDecodeError) as error:
        return [Problem(path, 0, None, f"cannot read the file: {error}")], []
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return [_syntax_problem(path, error, text)], []

    top_lines, table_lines = _scan_lines(text)
    problems = [
        Problem(path, top_lines.get(key, 1), None, _unknown_key_message(key, ("library",)))
        for key in document
        if key != "library"
    ]
    tables = document.get("library", [])
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        message = "libraries must be [[library]] tables"
        problems.append(Problem(path, top_lines.get("library", 1), None, message))
        tables = []
    elif not tables:
        problems.append(Problem(path, 0, None, "no [[library]] tables"))

    first_line_of_id: dict[str, int] = {}
    for index, table in enumerate(tables):
        lines = table_lines[index] if index < len(table_lines) else _TableLines(top_lines.get("library", 1))
        problems += _library_problems(path, table, lines)
        library_id = table.get("id")
        if not isinstance(library_id, str):
            continue
        if library_id in first_line_of_id:
            message = f"duplicate id {library_id!r} (first used on line {first_line_of_id[library_id]})"
            problems.append(Problem(path, lines.of("id"), library_id, message))
        else:
            first_line_of_id[library_id] = lines.of("id")
    return sorted(problems, key=lambda problem: problem.line), tables


def _syntax_problem(path: Path, error: tomllib.TOMLDecodeError, text: str) -> Problem:
    message = str(error)
    located = _TOML_ERROR_AT.search(message)
    if located:
        line, column = int(located[1]), located[2]
        return Problem(path, line, None, f"TOML syntax error: {message[: located.start()]} (column {column})")
    return Problem(path, max(text.count("\n"), 1), None, f"TOML syntax error: {message}")


def _scan_lines(text: str) -> tuple[dict[str, int], list[_TableLines]]:
    """Line numbers of top-level keys and tables, and of each `[[library]]` table and its keys."""
    top_lines: dict[str, int] = {}
    table_lines: list[_TableLines] = []
    current: _TableLines | None = None
    at_top = True
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _HEADER_LINE.fullmatch(line):
            at_top = False
            top_lines.setdefault(header[2].split(".")[0].strip("\"' "), number)
            current = _TableLines(number) if header[1] == "[[" and header[2] == "library" else None
            if current:
                table_lines.append(current)
        elif key := _KEY_LINE.match(line):
            if current:
                current.keys.setdefault(key[1], number)
            elif at_top:
                top_lines.setdefault(key[1], number)
    return top_lines, table_lines


def _library_problems(path: Path, table: dict[str, Any], lines: _TableLines) -> list[Problem]:
    library_id = table.get("id")
    if not (isinstance(library_id, str) and _LIBRARY_ID.fullmatch(library_id)):
        library_id = None
    problems = [
        Problem(path, lines.header, library_id, f"missing required key {key!r}")
        for key in REQUIRED_KEYS
        if key not in table
    ]
    for key, value in table.items():
        message = _value_problem(key, value, table.get("protocol"))
        if message:
            problems.append(Problem(path, lines.of(key), library_id, message))
    return problems


def _value_problem(key: str, value: Any, protocol: Any) -> str | None:
    """What is wrong with `key = value` in a `[[library]]` table, or None."""
    if key not in _KNOWN_KEYS:
        return _unknown_key_message(key, _KNOWN_KEYS)
    expected = bool if key == "enabled" else str
    if not isinstance(value, expected):
        actual = _TOML_TYPES.get(type(value), "date/time")
        return f"{key!r} must be a {_TOML_TYPES[expected]}, got {actual} {value!r}"
    if expected is bool:
        return None
    if _CONTROL_CHARACTER.search(value):
        return f"{key!r} contains a control character {_CONTROL_CHARACTER.search(value)[0]!r} (values are printed and used in paths)"
    if key in REQUIRED_KEYS and not value.strip():
        return f"{key!r} must not be empty"
    if key in _CHOICES and value not in _CHOICES[key]:
        return f"{key} {value!r} is not one of: {', '.join(_CHOICES[key])}"
    if key == "id" and not _LIBRARY_ID.fullmatch(value):
        return f"id {value!r} must be 1-32 letters, digits, '_' or '-' (ids become folder names)"
    if key == "endpoint":
        return _endpoint_problem(value, protocol)
    if key == "conn_id" and not _CONN_ID.fullmatch(value):
        return f"conn_id must be an Airflow connection id (letters, digits, '_', '.', '-'); {_CREDENTIALS_MESSAGE}"
    if key == "schedule" and value not in _SCHEDULE_PRESETS and len(value.split()) not in (5, 6):
        presets = ", ".join(_SCHEDULE_PRESETS)
        return f"schedule {value!r} must be a cron expression like '0 2 * * *' or one of: {presets}"
    return None


def _endpoint_problem(endpoint: str, protocol: Any) -> str | None:
    if _CREDENTIALS.search(endpoint):
        return _CREDENTIALS_MESSAGE
    if protocol in ("oai", "sru") and not _is_http_url(endpoint):
        return f"{protocol} endpoint must be an http(s) URL, got {endpoint!r}"
    if protocol == "z3950":
        z3950 = _Z3950_ENDPOINT.fullmatch(endpoint)
        if not z3950 or not 0 < int(z3950[2]) < 65536:
            return f"z3950 endpoint must be host:port/database like 'opac.example.cn:210/ZJLIB', got {endpoint!r}"
    return None


def _is_http_url(text: str) -> bool:
    try:
        url = urlsplit(text)
        return url.scheme in ("http", "https") and bool(url.hostname)
    except ValueError:
        return False


def _unknown_key_message(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
    return f"unknown key {key!r} ({hint})"
