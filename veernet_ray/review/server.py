"""The review web server: the standard library's http.server, a fixed route table, JSON in and out.

Routes (nothing else is served; no URL is ever turned into a file path):

    GET  /                         the page (static/index.html)
    GET  /static/review.js|.css    its script and style (from the package, by name)
    GET  /api/queue                flagged curves, worst first, with statuses and counts
    GET  /api/scan?id=SCAN         one scan: geometry, curves, statuses, version
    GET  /api/tile?id=SCAN&x=X&level=L
                                   PNG of scan columns [X, X + TILE * L), shrunk L times along depth
    POST /api/action               {scan_id, action, version, curve, ...} -> the scan's new state

Safety: bound to 127.0.0.1 unless told otherwise; scan ids are looked up in
qc.parquet, never joined into paths; the LAS an action writes must lie directly
in the output folder (`ReviewStore.las_path`); request bodies over MAX_BODY bytes
are refused (413) before they are read; POSTs must be JSON (a cross-site form
cannot send one without a CORS preflight, which is never granted); a Host header
other than the server's own name is refused (DNS rebinding).
"""

from __future__ import annotations

import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from veernet_ray.review.edits import EditError
from veernet_ray.review.scan import ScanError
from veernet_ray.review.store import ReviewError, ReviewStore

#: largest request body: a redraw of MAX_POINTS points is ~40 KB of JSON
MAX_BODY = 256 * 1024
#: tile width in output pixels: one tile of a 640-px-tall scan is ~100-300 KB of PNG
TILE = 512
#: zoom-out levels the page may ask tiles at (1 = full resolution)
LEVELS = (1, 2, 4, 8, 16, 32, 64)
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/static/review.js": ("review.js", "text/javascript; charset=utf-8"),
          "/static/review.css": ("review.css", "text/css; charset=utf-8")}
_SAFE_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")


def static_bytes(name: str) -> bytes:
    return resources.files("veernet_ray.review").joinpath("static", name).read_bytes()


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: ReviewStore, *, quiet: bool = True):
        self.store = store
        self.quiet = quiet
        super().__init__(address, Handler)
        host, port = self.server_address[:2]
        # on loopback, only the names a browser on this machine uses for us (DNS rebinding); a server
        # opened to the network with --host is reached under names it cannot know, so it takes any
        self.check_host = address[0] in ("127.0.0.1", "localhost", "::1")
        self.allowed_hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"{address[0]}:{port}",
                              f"{host}:{port}"}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{shown}:{port}/"

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="veernet-review", daemon=True)
        t.start()
        return t


class Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "veernet-review"
    sys_version = ""

    # ------------------------------------------------------------ plumbing
    def log_message(self, fmt: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(fmt, *args)

    def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, allow_nan=False).encode("utf-8"), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _host_ok(self) -> bool:
        host = self.headers.get("Host", "")
        if not self.server.check_host:
            return bool(_SAFE_HOST.match(host))
        return bool(_SAFE_HOST.match(host)) and host in self.server.allowed_hosts

    # ------------------------------------------------------------ routes
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "unexpected Host header; open the address veernet review printed")
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, max_num_fields=8)
        try:
            if parts.path in STATIC:
                name, ctype = STATIC[parts.path]
                return self._send(HTTPStatus.OK, static_bytes(name), ctype)
            if parts.path == "/favicon.ico":  # browsers ask for one; there is none
                return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            if parts.path == "/api/queue":
                return self._json(HTTPStatus.OK, self.server.store.queue())
            if parts.path == "/api/scan":
                return self._json(HTTPStatus.OK, self.server.store.scan_state(_one(query, "id")))
            if parts.path == "/api/tile":
                level = _int(query, "level")
                if level not in LEVELS:
                    raise ReviewError(f"level must be one of {LEVELS}")
                x = _int(query, "x")
                if x % (TILE * level):
                    raise ReviewError(f"x must be a multiple of {TILE} x level (tiles are {TILE} px wide)")
                png = self.server.store.tile(_one(query, "id"), x, level, TILE)
                return self._send(HTTPStatus.OK, png, "image/png", cache=True)
            return self._error(HTTPStatus.NOT_FOUND, f"no such page {parts.path[:100]!r}")
        except ReviewError as exc:
            return self._error(exc.status, str(exc))
        except (EditError, ScanError) as exc:  # the request, the scan or its files: say what to fix
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except Exception as exc:  # one failing request must not stop the server; say what failed
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "unexpected Host header; open the address veernet review printed")
        if urlsplit(self.path).path != "/api/action":
            return self._error(HTTPStatus.NOT_FOUND, "POST goes to /api/action only")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self._error(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        if int(length) > MAX_BODY:
            self.close_connection = True  # the body is never read
            return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"request body of {int(length)} bytes is over the {MAX_BODY}-byte limit")
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the action as application/json")
        try:
            body = json.loads(self.rfile.read(int(length)) or b"null")
        except (ValueError, UnicodeDecodeError):
            return self._error(HTTPStatus.BAD_REQUEST, "the request body is not valid JSON")
        try:
            return self._json(HTTPStatus.OK, self.server.store.apply(body))
        except ReviewError as exc:
            return self._error(exc.status, str(exc))
        except (EditError, ScanError) as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except OSError as exc:  # e.g. a full disk: the atomic writes left the old files in place
            return self._error(HTTPStatus.INSUFFICIENT_STORAGE, f"could not save ({exc.strerror or exc}); nothing "
                               "was changed: free space and try again")
        except Exception as exc:
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")


def _one(query: dict[str, list[str]], key: str) -> str:
    values = query.get(key)
    if not values:
        raise ReviewError(f"missing query parameter {key!r}")
    return values[0]


def _int(query: dict[str, list[str]], key: str) -> int:
    try:
        return int(_one(query, key))
    except ValueError:
        raise ReviewError(f"query parameter {key!r} must be an integer") from None


def make_server(store: ReviewStore, host: str = "127.0.0.1", port: int = 8765, quiet: bool = True) -> ReviewServer:
    return ReviewServer((host, port), store, quiet=quiet)


__all__ = ["LEVELS", "MAX_BODY", "ReviewServer", "TILE", "make_server"]
