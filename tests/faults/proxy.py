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
Z39.50 faults read the stream as BER-framed APDUs and rewrite whole APDUs, so that the client decodes every one of them:
- `replay_present`: server → client, a server presenting the same records for ever: the first
  `cycle` presentResponses pass, every later one is replaced by one of them in turn (`cycle=1`:
  the first page again and again; `cycle=2`: pages 1, 2, 1, 2, ...); ZOOM files the replayed
  records under the positions it asked for, as it would a real server's;
- `uncapped_init`: client → server, a server ignoring the message and record size the client
  asked for: the initRequest's preferredMessageSize and exceptionalRecordSize are raised to
  `UNCAPPED` before the server reads them.
`rewritten` counts the APDUs these two changed.
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
INIT_REQUEST, PRESENT_RESPONSE = 0xB4, 0xB9  # Z39.50 PDU choices [20] and [25], constructed, context-specific
PREFERRED_MESSAGE_SIZE, EXCEPTIONAL_RECORD_SIZE = 0x85, 0x86  # initRequest members [5] and [6], primitive INTEGER
UNCAPPED = 64 << 20
APDU_FAULTS = frozenset({"replay_present", "uncapped_init"})
REQUEST_FAULTS = frozenset({"uncapped_init"})  # faults on the client → server stream


@dataclass(frozen=True)
class TcpFault:
    kind: str  # drop | reset | stall | garbage | trickle
    after: int = 0
    skip: int = 0
    times: int | None = None
    length: int = 256
    interval: float = 0.2
    every: int | None = None
    cycle: int = 1  # replay_present: how many distinct presentResponses are replayed in turn

    def __str__(self) -> str:
        if self.kind in APDU_FAULTS:
            return self.kind + (f"-cycle{self.cycle}" if self.kind == "replay_present" else "")
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


def _ber_element(buffer: bytes | bytearray, at: int = 0) -> tuple[int, int, int] | None:
    """(end of the tag, start of the contents, end) of the BER element at `at`; None while the
    buffer does not hold it whole. Definite and indefinite lengths (Zebra sends records in
    indefinite-length EXTERNALs)."""
    i = at + 1
    if i > len(buffer):
        return None
    if buffer[at] & 0x1F == 0x1F:  # a tag number of several bytes
        while i < len(buffer) and buffer[i] & 0x80:
            i += 1
        i += 1
    if i >= len(buffer):
        return None
    tag_end, first = i, buffer[i]
    i += 1
    if first == 0x80:  # indefinite: the members, then an end-of-contents (00 00)
        contents = i
        while buffer[i : i + 2] != b"\x00\x00":
            if i + 2 > len(buffer) or (member := _ber_element(buffer, i)) is None:
                return None
            i = member[2]
        return tag_end, contents, i + 2
    if first & 0x80:
        width = first & 0x7F
        if i + width > len(buffer):
            return None
        length, i = int.from_bytes(buffer[i : i + width], "big"), i + width
    else:
        length = first
    return (tag_end, i, i + length) if i + length <= len(buffer) else None


def _ber_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _uncapped(init_request: bytes) -> bytes:
    """The initRequest with its preferredMessageSize and exceptionalRecordSize set to UNCAPPED."""
    tag_end, at, end = _ber_element(init_request)
    members = b""
    while at < end:
        _, contents, following = _ber_element(init_request, at)
        if init_request[at] in (PREFERRED_MESSAGE_SIZE, EXCEPTIONAL_RECORD_SIZE):
            members += bytes([init_request[at]]) + b"\x04" + UNCAPPED.to_bytes(4, "big")
        else:
            members += init_request[at:following]
        at = following
    return init_request[:tag_end] + _ber_length(len(members)) + members


class FaultProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream_port`, injecting the planned fault."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.fault: TcpFault | None = None
        self.connections = 0
        self.faulted = 0
        self.rewritten = 0
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
            on_request = fault is not None and fault.kind in REQUEST_FAULTS
            threading.Thread(target=self._pump, args=(client, upstream, fault if on_request else None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None if on_request else fault), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, fault: TcpFault | None) -> None:
        if fault is not None and fault.kind in APDU_FAULTS:
            return self._rewrite_apdus(source, target, fault)
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

    def _rewrite_apdus(self, source: socket.socket, target: socket.socket, fault: TcpFault) -> None:
        """Forward the stream APDU by APDU, rewriting those the fault is about."""
        buffer, presents = bytearray(), [0]  # presents: how many presentResponses came, then the first `cycle` of them
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                buffer += chunk
                while (element := _ber_element(buffer)) is not None:
                    apdu = bytes(buffer[: element[2]])
                    del buffer[: element[2]]
                    target.sendall(self._rewritten(apdu, fault, presents))
        self._close(source, target)

    def _rewritten(self, apdu: bytes, fault: TcpFault, presents: list) -> bytes:
        if fault.kind == "uncapped_init" and apdu[0] == INIT_REQUEST:
            changed = _uncapped(apdu)
        elif fault.kind == "replay_present" and apdu[0] == PRESENT_RESPONSE:
            if len(presents) <= fault.cycle:
                presents.append(apdu)
            changed = presents[1 + presents[0] % fault.cycle]
            presents[0] += 1
        else:
            return apdu
        with self._lock:
            self.rewritten += changed != apdu
        return changed

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
