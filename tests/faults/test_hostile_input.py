"""Hostile input: every XML parser of the harvest and the transform against entity and DTD
attacks, hostile ISO 2709 and MARCXML records, and hostile registry values. Each is rejected
with its reason or neutralised; nothing is expanded, fetched, or allowed to crash a run."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from lxml import etree

from harvesters import http as harvest_http
from harvesters import oai, sru
from transforms.readers import Accepted, Rejected, read_iso2709, read_xml
from unioncat.cli import main

pytestmark = pytest.mark.timeout(60)

SECRET = "TOP-SECRET-LOCAL-FILE"

# ---- XML: entities, DTDs, external fetches ----------------------------------------------------------

ATTACKS = {
    "external_file_entity": '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{secret}">]>', 
    "external_http_entity": '<!DOCTYPE r [<!ENTITY xxe SYSTEM "{url}/entity">]>',
    "external_dtd": '<!DOCTYPE r SYSTEM "{url}/evil.dtd">',
    "parameter_entity_file": '<!DOCTYPE r [<!ENTITY % p SYSTEM "file://{secret_dtd}"> %p;]>',
    "parameter_entity_http": '<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/param.dtd"> %p;]>',
    "billion_laughs": "<!DOCTYPE r [<!ENTITY xxe \"lol\">" + "".join(
        f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10 if n else "&xxe;" * 10}">' for n in range(10)) + "]>",
}
TITLE_REFERENCE = {"billion_laughs": "&lol9;", "parameter_entity_file": "&leak;"}
MARC = ('<record xmlns="http://www.loc.gov/MARC21/slim"><leader>00000nam a2200000 a 4500</leader>'
        '<controlfield tag="001">evil1</controlfield><datafield tag="245" ind1="0" ind2="0"><subfield code="a">Title {ref}'
        "</subfield></datafield></record>")
DOCUMENTS = {
    "marcxml": '<collection xmlns="http://www.loc.gov/MARC21/slim">' + MARC + "</collection>",
    "oai": ('<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><responseDate>2024-01-01T00:00:00Z</responseDate>'
            "<request>x</request><ListRecords><record><header><identifier>oai:x:evil1</identifier>"
            "<datestamp>2024-01-01</datestamp></header><metadata>" + MARC + "</metadata></record></ListRecords></OAI-PMH>"),
    "sru": ('<searchRetrieveResponse xmlns="http://www.loc.gov/zing/srw/"><version>1.2</version>'
            "<numberOfRecords>1</numberOfRecords><records><record><recordSchema>marcxml</recordSchema>"
            "<recordPacking>xml</recordPacking><recordData>" + MARC + "</recordData><recordPosition>1</recordPosition>"
            "</record></records></searchRetrieveResponse>"),
}


class EntityServer:
    """Serves DTDs and entities that would leak the secret; counts every request."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = f'<!ENTITY leak "{SECRET}">'.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture(scope="module")
def entity_server():
    server = EntityServer()
    yield server
    server.http.shutdown()


def hostile_document(attack: str, wrapper: str, entity_server: EntityServer, folder: Path) -> bytes:
    (folder / "secret.txt").write_text(SECRET)
    (folder / "secret.dtd").write_text(f'<!ENTITY leak "{SECRET}">')
    doctype = ATTACKS[attack].format(secret=folder / "secret.txt", secret_dtd=folder / "secret.dtd", url=entity_server.url)
    body = DOCUMENTS[wrapper].format(ref=TITLE_REFERENCE.get(attack, "&xxe;"))
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n{body}'.encode()


def _transform_reads(path: Path) -> str:
    results = list(read_xml(path, library_id="H1", run_id="r"))
    assert results and all(isinstance(r, (Accepted, Rejected)) for r in results)
    return " ".join(str(r.row) if isinstance(r, Accepted) else r.detail for r in results)


def _harvester_parses(wrapper: str, document: bytes) -> str:
    """What the harvester's parser makes of the page: the tree, or its refusal (libxml2's
    amplification limit refuses a billion laughs outright: a malformed page)."""
    try:
        if wrapper == "oai":
            return etree.tostring(oai._parse(document)).decode()
        response = sru.parse_response(document)
    except (ValueError, sru.MalformedResponse) as refused:
        return str(refused)
    assert response.stamps == [("evil1", None)]
    return repr(response)


@pytest.mark.parametrize("wrapper", DOCUMENTS)
@pytest.mark.parametrize("attack", ATTACKS)
def test_xml_entities_and_dtds_are_never_expanded_nor_fetched(entity_server, tmp_path, attack, wrapper):
    document = hostile_document(attack, wrapper, entity_server, tmp_path)
    page = tmp_path / "page.xml"
    page.write_bytes(document)
    entity_server.requests.clear()
    seen = _transform_reads(page)
    if wrapper != "marcxml":
        seen += _harvester_parses(wrapper, document)
    assert SECRET not in seen
    assert "lollollol" not in seen and len(seen) < 20_000  # nothing expanded
    assert entity_server.requests == [], "a parser fetched over the network"


def test_deeply_nested_xml_is_rejected_not_a_stack_overflow(tmp_path):
    page = tmp_path / "deep.xml"
    page.write_bytes(b"<collection>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</collection>")
    [rejected] = read_xml(page, library_id="H1", run_id="r")
    assert isinstance(rejected, Rejected) and rejected.reason == "bad_xml" and "depth" in rejected.detail.lower()


def test_a_text_node_beyond_libxml2s_limit_is_rejected(tmp_path):
    page = tmp_path / "huge.xml"
    page.write_bytes(DOCUMENTS["marcxml"].format(ref="x" * (11 << 20)).encode())
    [rejected] = read_xml(page, library_id="H1", run_id="r")
    assert isinstance(rejected, Rejected) and rejected.reason == "bad_xml" and "huge" in rejected.detail.lower()


# ---- ISO 2709 ---------------------------------------------------------------------------------------

def iso2709(fields: list[tuple[bytes, bytes]], leader: bytes = b"00000nam a2200000 a 4500") -> bytes:
    directory, body = b"", b""
    for tag, data in fields:
        data += b"\x1e"
        directory += tag + b"%04d%05d" % (len(data) % 10000, len(body))
        body += data
    base = 24 + len(directory) + 1
    return b"%05d" % min(base + len(body) + 1, 99999) + leader[5:12] + b"%05d" % base + leader[17:] + directory + b"\x1e" + body + b"\x1d"


def book(title: bytes, *, leader: bytes = b"00000nam a2200000 a 4500", extra: list | None = None) -> bytes:
    return iso2709([(b"001", b"h1"), (b"245", b"00\x1fa" + title), *(extra or [])], leader)


CNMARC_GB = b"\x1fa20240101d2024    em y0chiy0120    ea"  # 100$a: GB 2312 declared

HOSTILE_RECORDS = {
    "huge_declared_length": (b"99999" + book(b"Fine")[5:], ("accepted", "Fine")),
    "field_beyond_the_record": (book(b"Fine").replace(b"245000900003", b"245900000003", 1), ("rejected", "bad_directory")),
    "oversized_record": (book(b"x" * 9000, extra=[(b"500", b"  \x1fa" + b"y" * 9000)] * 11), ("rejected", "oversized_record")),
    "field_longer_than_its_directory_can_say": (book(b"z" * 10_050), ("rejected", "bad_directory")),
    "nul_in_the_leader": (b"\x00" * 5 + book(b"Fine")[5:], ("rejected", "bad_leader")),
    "invalid_utf8": (book(b"T\xc3\x28\x98\x81\x98\x81\x98\x81\x98\x81"), ("rejected", "undecodable")),
    "invalid_gb18030": (iso2709([(b"001", b"h1"), (b"100", b"  " + CNMARC_GB), (b"200", b"1 \x1fa\xd6\xd0\x81\x20\x81\x20\xff\xff")]),
                        ("rejected", "undecodable")),
    "control_characters_in_the_title": (book(b"Evil\x1b[2J\x07 Title\x00\x08"), ("accepted", "Evil[2J Title")),
    "line_breaks_and_a_bidi_override_in_the_title": (book("Line\nbreak\tand \u202eesrever\u202c".encode()), ("accepted", "Line break and esrever")),
}


@pytest.mark.parametrize("name", HOSTILE_RECORDS)
def test_hostile_iso2709_record_is_rejected_with_its_reason_or_neutralised(name):
    data, (outcome, expected) = HOSTILE_RECORDS[name]
    [result] = read_iso2709(data, library_id="H1", run_id="r")
    if outcome == "rejected":
        assert isinstance(result, Rejected) and result.reason == expected, result
        assert result.raw == data.lstrip(b"\x00") and result.detail
    else:
        assert isinstance(result, Accepted), result
        assert result.row["title"] == expected
        assert result.row["title"].isprintable()
        if "control" in name:
            assert "control_characters_removed" in result.row["quality_flags"]


# ---- the registry ------------------------------------------------------------------------------------

LIBRARY = 'name = "图书馆"\ncity = "杭州"\nlevel = "city"\nprotocol = "file"\nendpoint = "drops/x"\n'


@pytest.mark.parametrize("value, message", [
    ("x'; drop table libraries; --", "must be 1-32 letters, digits"),
    ("../../etc", "must be 1-32 letters, digits"),
    ("ZJ 001", "must be 1-32 letters, digits"),
    ("ＺＪ001", "must be 1-32 letters, digits"),
    ("ZJ001\\n", "control character"),
    ("Z" * 33, "must be 1-32 letters, digits"),
    ("", "must not be empty|must be 1-32"),
])
def test_sources_validate_rejects_library_ids_outside_the_safe_alphabet(tmp_path, capsys, value, message):
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[library]]\nid = "{value}"\n{LIBRARY}', encoding="utf-8")
    assert main(["sources", "validate", "--sources", str(sources)]) == 1
    out = capsys.readouterr().out
    assert "sources.toml:2:" in out
    assert any(part in out for part in message.split("|")), out


@pytest.mark.parametrize("key", ["name", "city", "endpoint", "set"])
def test_sources_validate_rejects_control_characters_in_any_value(tmp_path, capsys, key):
    values = {"name": "图书馆", "city": "杭州", "endpoint": "drops/x", "set": "a"}
    values[key] += "\\u001b[2J"
    text = '[[library]]\nid = "ZJ001"\nlevel = "city"\nprotocol = "file"\n' + "".join(f'{k} = "{v}"\n' for k, v in values.items())
    sources = tmp_path / "sources.toml"
    sources.write_text(text, encoding="utf-8")
    assert main(["sources", "validate", "--sources", str(sources)]) == 1
    assert f"'{key}' contains a control character '\\x1b'" in capsys.readouterr().out


# ---- numbers: "²" is a digit to str.isdigit() but not a number to int() or float() -----------------

def test_digits_that_are_not_numbers_are_ignored_not_raised():
    response = requests.Response()
    response.headers["Retry-After"] = "²"
    assert harvest_http._retry_after(response) is None
    assert sru._integer(etree.fromstring("<response><numberOfRecords>²</numberOfRecords></response>"), "numberOfRecords") is None
