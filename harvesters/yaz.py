"""ctypes bindings to the YAZ ZOOM C API (`libyaz.so.5`, Debian package `libyaz5`).

Only what a harvester needs: a connection with options, a PQF search, batched
presents (`ZOOM_resultset_records`) of records as the server sent them, and
the connection's error (a Z39.50 diagnostic or a ZOOM client error such as
connect failed / connection lost / timeout). Every call is blocking and
bounded by the connection's `timeout` option (the longest wait for the next
bytes) and by `deadline` (the longest a whole search or present may take: a
server trickling a byte at a time never trips `timeout`; when the deadline
passes, a watchdog shuts the socket down under libyaz, and the call fails
with ERROR_TIMEOUT); ctypes releases the GIL while libyaz waits on the
network.

    with Connection("opac.example.cn:210", database="ZJLIB", timeout=30,
                    preferredRecordSyntax="unimarc", elementSetName="F") as zoom:
        with zoom.search('@attr 1=_ALLRECORDS @attr 2=103 ""') as hits:
            for record in hits.records(0, min(hits.size, 500)):
                ...  # bytes exactly as the server sent them
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import socket
import threading
from ctypes import POINTER, byref, c_char_p, c_int, c_size_t, c_void_p

# ZOOM client-side error codes (yaz/zoom.h); smaller codes are server diagnostics.
ERROR_CONNECT = 10000
ERROR_DECODE = 10003
ERROR_CONNECTION_LOST = 10004
ERROR_INIT = 10005
ERROR_TIMEOUT = 10007

_SIGNATURES = {
    "ZOOM_connection_create": ([c_void_p], c_void_p),
    "ZOOM_connection_connect": ([c_void_p, c_char_p, c_int], None),
    "ZOOM_connection_option_set": ([c_void_p, c_char_p, c_char_p], None),
    "ZOOM_connection_option_get": ([c_void_p, c_char_p], c_char_p),
    "ZOOM_connection_error_x": ([c_void_p, POINTER(c_char_p), POINTER(c_char_p), POINTER(c_char_p)], c_int),
    "ZOOM_connection_search_pqf": ([c_void_p, c_char_p], c_void_p),
    "ZOOM_connection_destroy": ([c_void_p], None),
    "ZOOM_connection_get_socket": ([c_void_p], c_int),
    "ZOOM_resultset_size": ([c_void_p], c_size_t),
    "ZOOM_resultset_records": ([c_void_p, POINTER(c_void_p), c_size_t, c_size_t], None),
    "ZOOM_resultset_cache_reset": ([c_void_p], None),
    "ZOOM_resultset_destroy": ([c_void_p], None),
    # returns `const char *` of binary data or a Z_External *: read as a pointer, not a C string
    "ZOOM_record_get": ([c_void_p, c_char_p, POINTER(c_int)], c_void_p),
    "ZOOM_record_error": ([c_void_p, POINTER(c_char_p), POINTER(c_char_p), POINTER(c_char_p)], c_int),
}


class _External(ctypes.Structure):
    """The head of Z_External (yaz/prt-ext.h); every member of its union is a pointer."""

    _fields_ = [("direct_reference", c_void_p), ("indirect_reference", c_void_p), ("descriptor", c_void_p),
                ("which", c_int), ("content", c_void_p)]


class _OctetString(ctypes.Structure):
    """Odr_oct (yaz/odr.h)."""

    _fields_ = [("buf", c_void_p), ("len", c_int)]


EXTERNAL_OCTET_ALIGNED = 1  # Z_External_octet: ISO 2709 and XML records


@functools.cache
def _libyaz() -> ctypes.CDLL:
    """libyaz, loaded on first use so that importing a harvester never needs it."""
    path = ctypes.util.find_library("yaz") or "libyaz.so.5"
    try:
        library = ctypes.CDLL(path)
    except OSError as error:
        raise OSError(f"cannot load the YAZ library {path} (Debian package libyaz5): {error}") from None
    for name, (argtypes, restype) in _SIGNATURES.items():
        function = getattr(library, name)
        function.argtypes, function.restype = argtypes, restype
    return library


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value else ""


class ZoomError(Exception):
    """A failed ZOOM call: `code` is a server diagnostic (Bib-1, < 10000) or a ZOOM client error (ERROR_*)."""

    def __init__(self, code: int, message: str, addinfo: str = "", diagset: str = ""):
        super().__init__(f"{message} ({diagset or 'ZOOM'} {code}{': ' + addinfo if addinfo else ''})")
        self.code, self.message, self.addinfo, self.diagset = code, message, addinfo, diagset


class Connection:
    """A Z39.50 session; `options` are ZOOM option names (`preferredRecordSyntax`, `elementSetName`...)."""

    def __init__(self, address: str, *, database: str, timeout: int, user: str | None = None,
                 password: str | None = None, deadline: float | None = None, **options: str | int) -> None:
        self.deadline = deadline
        self._handle = _libyaz().ZOOM_connection_create(None)
        settings = {"timeout": timeout, "databaseName": database, "user": user, "password": password, **options}
        for name, value in settings.items():
            if value is not None:
                self.set_option(name, value)
        try:
            with self.bounded():
                _libyaz().ZOOM_connection_connect(self._handle, address.encode(), 0)
                self.raise_error()
        except ZoomError:
            self.close()
            raise

    def option(self, name: str) -> str:
        return _text(_libyaz().ZOOM_connection_option_get(self._handle, name.encode()))

    def set_option(self, name: str, value: str | int) -> None:
        _libyaz().ZOOM_connection_option_set(self._handle, name.encode(), str(value).encode())

    def raise_error(self) -> None:
        message, addinfo, diagset = c_char_p(), c_char_p(), c_char_p()
        code = _libyaz().ZOOM_connection_error_x(self._handle, byref(message), byref(addinfo), byref(diagset))
        if code:
            raise ZoomError(code, _text(message.value), _text(addinfo.value), _text(diagset.value))

    @contextlib.contextmanager
    def bounded(self):
        """Bound the blocking calls inside by `deadline`: a watchdog shuts the socket down (again,
        should libyaz reconnect) until they return; they then fail with ERROR_TIMEOUT."""
        if not self.deadline:
            yield
            return
        done, fired = threading.Event(), threading.Event()

        def watchdog() -> None:
            while not done.wait(self.deadline):
                fired.set()
                self._shut_socket()

        threading.Thread(target=watchdog, name="zoom-deadline", daemon=True).start()
        try:
            yield
        except ZoomError:
            if not fired.is_set():
                raise
        finally:
            done.set()
        if fired.is_set():
            raise ZoomError(ERROR_TIMEOUT, f"no complete answer within the {self.deadline:g} s deadline")

    def _shut_socket(self) -> None:
        handle = self._handle
        fd = _libyaz().ZOOM_connection_get_socket(handle) if handle else -1
        if fd >= 0:
            with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as connection:
                connection.shutdown(socket.SHUT_RDWR)

    def search(self, pqf: str) -> ResultSet:
        handle = None
        try:
            with self.bounded():
                handle = _libyaz().ZOOM_connection_search_pqf(self._handle, pqf.encode("utf-8"))
                self.raise_error()
        except ZoomError:
            _libyaz().ZOOM_resultset_destroy(handle)
            raise
        return ResultSet(self, handle)

    def close(self) -> None:
        if self._handle:
            _libyaz().ZOOM_connection_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ResultSet:
    """A search's result set on the server; records are fetched by position (0-based)."""

    def __init__(self, connection: Connection, handle: int) -> None:
        self._connection, self._handle = connection, handle
        self.size = _libyaz().ZOOM_resultset_size(handle)

    def records(self, start: int, count: int) -> list[bytes]:
        """Records start..start+count-1 in as few presents as the server allows, bytes as received."""
        handles = (c_void_p * count)()
        with self._connection.bounded():
            _libyaz().ZOOM_resultset_records(self._handle, handles, start, count)
            self._connection.raise_error()
        records = [self._octets(handle, start + n) for n, handle in enumerate(handles)]
        _libyaz().ZOOM_resultset_cache_reset(self._handle)  # the batch is copied out: keep memory flat
        return records

    @staticmethod
    def _octets(handle: int | None, position: int) -> bytes:
        # Type "raw" decodes and re-encodes ISO 2709 (yaz_record_render): slower, and not always the
        # bytes that were sent. The EXTERNAL's octets are.
        external = _libyaz().ZOOM_record_get(handle, b"ext", None) if handle else None
        if external:
            content = _External.from_address(external)
            if content.which == EXTERNAL_OCTET_ALIGNED:
                octets = _OctetString.from_address(content.content)
                return ctypes.string_at(octets.buf, octets.len)
        return ResultSet._rendered(handle, position)

    @staticmethod
    def _rendered(handle: int | None, position: int) -> bytes:
        """A record that is not an octet string (SUTRS, GRS-1), or the reason there is none."""
        if not handle:
            raise ZoomError(ERROR_CONNECTION_LOST, f"record {position + 1} did not arrive")
        length = c_int()
        data = _libyaz().ZOOM_record_get(handle, b"raw", byref(length))
        if data:
            return ctypes.string_at(data, length.value)
        message, addinfo, diagset = c_char_p(), c_char_p(), c_char_p()
        code = _libyaz().ZOOM_record_error(handle, byref(message), byref(addinfo), byref(diagset))
        if code:
            message_text = f"record {position + 1}: {_text(message.value)}"
            raise ZoomError(code, message_text, _text(addinfo.value), _text(diagset.value))
        return b""

    def close(self) -> None:
        if self._handle:
            _libyaz().ZOOM_resultset_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> ResultSet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
