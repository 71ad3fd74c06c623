"""An OAI-PMH repository whose lists never end, for the fault suite's endless-token tests.

It serves the records of a `RecordStore` (the project's, unioncat.network.oai_server) and, at the
end of a list, instead of ending it hands out a fresh resumption token that starts the list
again (a lap). Its tokens carry no completeListSize, the one count a harvester could check,
unless `announce` is set. Modes:
- `fresh`: each lap's records under new identifiers (`<identifier>/lap<n>`): nothing ever
  repeats, as from a server that invents records (a cursor past the end that wraps around);
- `restamped`: the same identifiers, each lap's datestamps one second later, as from a server
  that stamps records when it serves them: headers never repeat, identifiers do.
`laps` (None: for ever) ends the list after that many laps: the fault is over; a token of a lap
beyond it is refused with badResumptionToken, as an expired one would be. `list_requests` counts
the ListRecords requests. Identify, ListMetadataFormats (marc21) and ListRecords (from, until in
the seconds form or the day form) are all it answers.

    with EndlessOAIServer(store, page_size=25, mode="fresh") as server:
        harvest(server.url)   # never ends by itself
        server.laps = 1       # from now on the list ends after one lap
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from unioncat.network.oai_server import MARC_NAMESPACE, OAI_NAMESPACE, Query, RecordStore, utc_stamp

MODES = ("fresh", "restamped")


class EndlessOAIServer:
    def __init__(self, store: RecordStore, *, page_size: int, mode: str, announce: int | None = None) -> None:
        assert mode in MODES
        self.store, self.page_size, self.mode, self.announce = store, page_size, mode, announce
        self.laps: int | None = None
        self.list_requests = 0
        self._tokens: dict[str, tuple[Query, int, int]] = {}  # token → (query, lap, offset)
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.repository = self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/oai"

    def __enter__(self) -> EndlessOAIServer:
        threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._http.shutdown()
        self._http.server_close()

    # ---- the verbs --------------------------------------------------------------------------------

    def respond(self, arguments: dict[str, str]) -> bytes:
        verb = arguments.get("verb")
        if verb == "Identify":
            earliest = self.store.earliest() or "2000-01-01T00:00:00Z"
            body = (f"<Identify><repositoryName>endless</repositoryName><baseURL>{self.url}</baseURL>"
                    "<protocolVersion>2.0</protocolVersion><adminEmail>oai@unioncat.invalid</adminEmail>"
                    f"<earliestDatestamp>{earliest}</earliestDatestamp><deletedRecord>no</deletedRecord>"
                    "<granularity>YYYY-MM-DDThh:mm:ssZ</granularity></Identify>")
        elif verb == "ListMetadataFormats":
            body = ("<ListMetadataFormats><metadataFormat><metadataPrefix>marc21</metadataPrefix>"
                    "<schema>http://www.loc.gov/standards/marcxml/schema/MARC21slim.xsd</schema>"
                    f"<metadataNamespace>{MARC_NAMESPACE}</metadataNamespace></metadataFormat></ListMetadataFormats>")
        elif verb == "ListRecords":
            body = self._list_records(arguments)
        else:
            body = f'<error code="badVerb">{escape(str(verb))}</error>'
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<OAI-PMH xmlns="{OAI_NAMESPACE}"><responseDate>{utc_stamp()}'
                f"</responseDate><request>{self.url}</request>{body}</OAI-PMH>\n").encode("utf-8")

    def _list_records(self, arguments: dict[str, str]) -> str:
        with self._lock:
            self.list_requests += 1
            if "resumptionToken" in arguments:
                state = self._tokens.get(arguments["resumptionToken"])
                if state is None or (self.laps is not None and state[1] >= self.laps):
                    return f'<error code="badResumptionToken">{escape(arguments["resumptionToken"])}</error>'
                query, lap, offset = state
            else:
                query, lap, offset = Query(_bound(arguments.get("from"), "T00:00:00Z") or "0000-01-01T00:00:00Z",
                                           _bound(arguments.get("until"), "T23:59:59Z") or "9999-12-31T23:59:59Z"), 0, 0
            rows = self.store.page(query, None, 10**9)
            if not rows:
                return '<error code="noRecordsMatch">no records</error>'
            page = rows[offset : offset + self.page_size]
            lap_ends = offset + self.page_size >= len(rows)
            following = (lap + 1, 0) if lap_ends else (lap, offset + self.page_size)
            token = ""
            if not (lap_ends and self.laps is not None and lap + 1 >= self.laps):
                value = f"lap{following[0]}-{following[1]}-{secrets.token_hex(4)}"
                self._tokens[value] = (query, *following)
                size = f' completeListSize="{self.announce}"' if self.announce is not None else ""
                token = f"<resumptionToken{size}>{value}</resumptionToken>"
            records = "".join(self._record(row, lap) for row in page)
        return f"<ListRecords>{records}{token}</ListRecords>"

    def _record(self, row: tuple, lap: int) -> str:
        identifier, datestamp, metadata = row[0], row[1], row[4]
        if self.mode == "fresh" and lap:
            identifier = f"{identifier}/lap{lap}"
        elif self.mode == "restamped":
            datestamp = utc_stamp(datetime.fromisoformat(datestamp.replace("Z", "+00:00")) + timedelta(seconds=lap))
        return (f"<record><header><identifier>{escape(identifier)}</identifier><datestamp>{datestamp}</datestamp></header>"
                f"<metadata>{metadata.decode('utf-8')}</metadata></record>")


def _bound(value: str | None, day_suffix: str) -> str | None:
    if value is None:
        return None
    return value if "T" in value else value + day_suffix


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        arguments = {name: values[0] for name, values in parse_qs(urlsplit(self.path).query).items()}
        body = self.server.repository.respond(arguments)
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass

