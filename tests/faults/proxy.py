"""A TCP fault proxy: sits in front of any loopback server (Zebra's Z39.50 and SRU, the OAI-PMH
server) and breaks the server's answer the way real networks and servers do.

    with FaultProxy(zebra_port) as proxy:
        proxy.plan(TcpFault("reset", after=30_000))      # every connection: RST after 30 kB
        harvest(f"127.0.0.1:{proxy.port}/ZJ001")
        proxy.connections                                # how many the client opened

Faults act on the server → client stream of a connection, after `after` bytes went through
unchanged; `skip` connections are passed through first, then `times` connections get the fault
(`None`: every later one). Kinds:
- `drop`: the connection is accepted and closed at once (after `after` bytes: closed cleanly);
- `reset`: a TCP RST (SO_LINGER 0) after `after` bytes;
- `stall`: nothing more is forwarded after `after` bytes, the connection stays open;
- `garbage`: after `after` bytes, `length` bytes of garbage (NUL, `<`, `&`, invalid UTF-8) replace
  the server's bytes, then the rest of the answer goes on (the framing is intact, the content not);
  with `every`, again every `every` bytes (a kept-alive HTTP connection carries many answers);
- `trickle`: the answer is forwarded one byte every `interval` seconds (a server that never stalls
  long enough for a read timeout, but never finishes).
A stopping proxy ends its stalls and trickles at once.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass

HOST = "127.0.0.1"
GARBAGE = b"\x00<\xff\xfe&#1;>]]>\x1b" * 64


@dataclass(frozen=True)
class TcpFault:
    kind: str  # drop | reset | stall | garbage | trickle
    after: int = 0
    skip: int = 0
    times: int | None = None
    length: int = 256
    interval: float = 0.2
    every: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}@{self.after}" + (f"every{self.every}" if self.every else "") + (f"x{self.times}" if self.times else "")


def _garbled(chunk: bytes, offset: int, fault: TcpFault) -> bytes:
    """`chunk` (at `offset` in the stream) with the bytes in the fault's garbage windows replaced."""
    out = bytearray(chunk)
    for n in range(len(chunk)):
        position = offset + n
        if fault.every:
            position %= fault.every
        if fault.after <= position < fault.after + fault.length:
            out[n] = GARBAGE[(position - fault.after) % len(GARBAGE)]
    return bytes(out)


class FaultProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream_port`, injecting the planned fault."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.fault: TcpFault | None = None
        self.connections = 0
        self.faulted = 0
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    def plan(self, fault: TcpFault | None) -> None:
        self.fault = fault

    def _fault_for_next_connection(self) -> TcpFault | None:
        with self._lock:
            self.connections += 1
            fault = self.fault
            if fault is None or self.connections <= fault.skip:
                return None
            if fault.times is not None and self.faulted >= fault.times:
                return None
            self.faulted += 1
            return fault

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            fault = self._fault_for_next_connection()
            if fault and fault.kind == "drop" and fault.after == 0:
                client.close()
                continue
            try:
                upstream = socket.create_connection((HOST, self.upstream_port))
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, fault), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, fault: TcpFault | None) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if fault is not None and fault.kind == "garbage":
                    chunk = _garbled(chunk, sent, fault)
                if fault is None or fault.kind == "garbage" or sent + len(chunk) <= fault.after:
                    target.sendall(chunk)
                    sent += len(chunk)
                    continue
                head, tail = chunk[: fault.after - sent], chunk[fault.after - sent :]
                target.sendall(head)
                sent += len(head)
                self._misbehave(fault, source, target, tail)
                return
        self._close(source, target)

    def _misbehave(self, fault: TcpFault, source: socket.socket, target: socket.socket, rest: bytes) -> None:
        """Apply `fault` to the stream from here on."""
        if fault.kind == "drop":
            self._close(source, target)
        elif fault.kind == "reset":
            target.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            target.close()
            source.close()
        elif fault.kind == "stall":
            self._stopping.wait()
            self._close(source, target)
        elif fault.kind == "trickle":
            self._trickle(source, target, rest, fault.interval)
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")

    def _trickle(self, source: socket.socket, target: socket.socket, data: bytes, interval: float) -> None:
        source.setblocking(False)
        while not self._stopping.is_set():
            with contextlib.suppress(BlockingIOError):
                data += source.recv(65536)
            if data:
                target.sendall(data[:1])
                data = data[1:]
            self._stopping.wait(interval)
        self._close(source, target)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._stopping.set()
        self._listener.close()
        self._close(*self._sockets)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
