"""The explorer's HTTP server: the standard library's ThreadingHTTPServer, JSON endpoints, static files from
a fixed in-memory table (no path is ever joined with user input; nothing is read from disk per request).

Endpoints (GET only; every parameter is checked, unknown ones are refused; errors are 4xx JSON
``{"error": "..."}``):

| path | parameters | answer |
|---|---|---|
| ``/``, ``/app.js``, ``/app.css`` | none | the app |
| ``/api/info`` | none | model, text size, number of display lines, defaults |
| ``/api/cells`` | none | every cell with its best feature and score |
| ``/api/gates`` | none | per layer and gate type, every unit's left/right saturated fractions |
| ``/api/lines`` | ``first``, ``count``, ``color`` (cell, loss, error, ablation), ``cell`` (L:I); ``plot_layer``, ``plot_line``, ``plot_rows``, ``plot_len`` | a window of display lines; with ``plot_*``, ``states``: the ``/api/states`` answer for the hidden-state plot's window (``ExplorerData.plot_window``), so a scroll costs one request |
| ``/api/predict`` | ``pos``, ``ablate`` (L:I) | top next-character candidates, the actual one's probability (and the n-gram's) |
| ``/api/search`` | ``start``, ``end``, ``threshold``, ``limit`` | LSTMVis pattern search over the span |
| ``/api/states`` | ``start``, ``len``, ``layer`` | every cell of a layer over a window, float16 in base64 |

Bound beyond loopback, every request needs the access token (``rnnlens.explorer.access``): ``?token=...`` on
any path (it is removed before the endpoint's own parameters are checked) or the cookie a valid one sets;
without it the answer is a plain-text 403.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from ..exceptions import RnnlensError
from .access import Access
from .assets import ASSETS
from .data import ExplorerData
from .search import SearchConfig

_INT = re.compile(r"-?\d{1,12}")
_FLOAT = re.compile(r"-?\d{1,3}(\.\d{1,6})?")
_CELL = re.compile(r"(\d{1,4}):(\d{1,6})")
_PLOT = ("plot_layer", "plot_line", "plot_rows", "plot_len")  # /api/lines: the plot's window in the same answer


class BadRequest(Exception):
    """A request the server refuses (400, or the given status)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _params(query: str, allowed: set[str]) -> dict[str, str]:
    try:
        raw = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=10)
    except ValueError:
        raise BadRequest("malformed query string") from None
    extra = set(raw) - allowed
    if extra:
        raise BadRequest(f"unknown parameter(s): {', '.join(sorted(extra))[:100]}; allowed: {', '.join(sorted(allowed)) or 'none'}")
    if any(len(v) != 1 for v in raw.values()):
        raise BadRequest("each parameter may be given once")
    return {k: v[0] for k, v in raw.items()}


def _number(p: dict[str, str], name: str, pattern: re.Pattern, cast: Callable, what: str, lo, hi, default):
    """Parameter ``name`` matched against ``pattern``, converted by ``cast`` and checked to lie in lo..hi;
    ``default`` when absent (None: the parameter is required)."""
    if name not in p:
        if default is None:
            raise BadRequest(f"missing parameter {name}")
        return default
    if not pattern.fullmatch(p[name]):
        raise BadRequest(f"{name} must be {what}")
    v = cast(p[name])
    if not lo <= v <= hi:
        raise BadRequest(f"{name} must be in {lo}..{hi}, got {v}")
    return v


def _int(p: dict[str, str], name: str, lo: int, hi: int, default: int | None = None) -> int:
    return _number(p, name, _INT, int, "an integer", lo, hi, default)


def _float(p: dict[str, str], name: str, lo: float, hi: float, default: float) -> float:
    return _number(p, name, _FLOAT, float, "a number like 0.3", lo, hi, default)


def _cell(p: dict[str, str], data: ExplorerData, key: str = "cell") -> tuple[int, int] | None:
    if not p.get(key):
        return None
    m = _CELL.fullmatch(p[key])
    if not m:
        raise BadRequest(f"{key} must be LAYER:INDEX, e.g. 0:12")
    layer, index = int(m.group(1)), int(m.group(2))
    try:
        data.check_cell(layer, index)
    except RnnlensError as exc:
        raise BadRequest(str(exc)) from None
    return layer, index


class Api:
    """Maps a path and its query to a JSON-able answer."""

    def __init__(self, data: ExplorerData) -> None:
        self.data = data
        self.routes: dict[str, tuple[set[str], Callable[[dict[str, str]], Any]]] = {
            "/api/info": (set(), lambda p: data.info()),
            "/api/cells": (set(), lambda p: {"cells": data.cells}),
            "/api/gates": (set(), lambda p: {"cell": data.cfg.model.cell, "gates": data.gates}),
            "/api/lines": ({"first", "count", "color", "cell", *_PLOT}, self.lines),
            "/api/predict": ({"pos", "ablate"}, lambda p: data.predict(_int(p, "pos", 0, data.n - 1),
                                                                        _cell(p, data, "ablate"))),
            "/api/search": ({"start", "end", "threshold", "limit"}, self.search),
            "/api/states": ({"start", "len", "layer"}, self.states),
        }

    def lines(self, p: dict[str, str]) -> Any:
        d = self.data
        color = p.get("color", "cell")
        if color not in ("cell", "loss", "error", "ablation"):
            raise BadRequest("color must be cell, loss, error or ablation")
        out = d.lines(_int(p, "first", 0, len(d.line_starts) - 1), _int(p, "count", 1, d.config.max_lines, 50),
                      color, _cell(p, d))
        if any(k in p for k in _PLOT):
            first, shown = out["first"], len(out["starts"])
            line = _int(p, "plot_line", first, first + shown - 1)  # the plot's top line is among these lines
            start, length = d.plot_window(line, _int(p, "plot_rows", 1, d.config.max_lines),
                                          _int(p, "plot_len", 1, d.config.max_window), out["end"])
            out["states"] = d.states(start, length, _int(p, "plot_layer", 0, d.layers - 1))
        return out

    def search(self, p: dict[str, str]) -> Any:
        d = self.data
        start = _int(p, "start", 0, d.n - 1)
        end = _int(p, "end", start, min(d.n - 1, start + 999))
        cfg = SearchConfig(threshold=_float(p, "threshold", -1.0, 1.0, SearchConfig.threshold),
                           limit=_int(p, "limit", 1, 1000, SearchConfig.limit))
        return d.search(start, end, cfg)

    def states(self, p: dict[str, str]) -> Any:
        d = self.data
        start = _int(p, "start", 0, d.n - 1)
        return d.states(start, _int(p, "len", 1, min(d.config.max_window, d.n - start)),
                        _int(p, "layer", 0, d.layers - 1, 0))

    def answer(self, path: str, query: str) -> Any:
        if path not in self.routes:
            raise BadRequest(f"no such endpoint {path[:80]!r}", HTTPStatus.NOT_FOUND)
        allowed, fn = self.routes[path]
        try:
            return fn(_params(query, allowed))
        except RnnlensError as exc:
            raise BadRequest(str(exc)) from None


class Handler(BaseHTTPRequestHandler):
    """One request: a static asset from the table, or an API answer as JSON."""

    server_version = "rnnlens-explorer"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    api: Api  # set on the subclass made by make_server
    access: Access = Access()  # likewise; the default is open (loopback)
    _extra: list[tuple[str, str]]

    def _allowed(self, query: str) -> str | None:
        """The query without ``token`` when the request may proceed; None after answering 403."""
        self._extra = []
        if self.access.token is None:
            return query
        given, rest = self.access.split_query(query)
        self._extra.append(("Referrer-Policy", "no-referrer"))
        if self.access.matches(given):
            if self.access.cookie_token(self.headers.get_all("Cookie") or []) != self.access.token:
                self._extra.append(("Set-Cookie", self.access.set_cookie()))
            return rest
        if given is None and self.access.matches(self.access.cookie_token(self.headers.get_all("Cookie") or [])):
            return rest
        self._send(403, "text/plain; charset=utf-8",
                   b"403 Forbidden: this explorer needs its access token. Open the full URL that rnnlens serve "
                   b"printed (it ends in ?token=...).\n")
        return None

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            parts = urlsplit(self.path)
        except ValueError:
            self._extra = []
            self._json({"error": "malformed URL"}, 400)
            return
        query = self._allowed(parts.query)
        if query is None:
            return
        if parts.path in ASSETS:
            ctype, body = ASSETS[parts.path]
            self._send(200, ctype, body)
            return
        try:
            self._json(self.api.answer(parts.path, query), 200)
        except BadRequest as exc:
            self._json({"error": str(exc)}, exc.status)
        except Exception as exc:  # a bug: answer 500 and keep serving
            self._json({"error": f"internal error: {type(exc).__name__}"}, 500)

    def do_HEAD(self) -> None:  # noqa: N802
        if self._allowed(self._query()) is not None:
            self._json({"error": "use GET"}, 405)

    def _refuse(self) -> None:
        if self._allowed(self._query()) is not None:
            self._json({"error": "only GET is supported"}, 405)

    def _query(self) -> str:
        try:
            return urlsplit(self.path).query
        except ValueError:
            return ""

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

    def _json(self, obj: Any, status: int) -> None:
        self._send(status, "application/json; charset=utf-8", json.dumps(obj, allow_nan=False).encode("utf-8"))

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        for name, value in getattr(self, "_extra", []):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: library code does not print


class ExplorerServer(ThreadingHTTPServer):
    """Threads per connection, a deep listen queue, and no tracebacks for clients that hang up mid-answer."""

    daemon_threads = True
    request_queue_size = 128
    access: Access = Access()

    @property
    def token(self) -> str | None:
        """The access token every request needs, None when the server is open (loopback)."""
        return self.access.token

    @property
    def url(self) -> str:
        """The address to open, with ``?token=...`` when a token is required."""
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/" + (f"?token={self.access.token}" if self.access.token else "")

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def make_server(data: ExplorerData, host: str = "127.0.0.1", port: int = 8000, token_required: bool | None = None,
                token: str | None = None) -> ExplorerServer:
    """A server bound to host:port (port 0: any free port; see ``server.server_address``), not yet serving.

    ``token_required`` None: a token is required unless ``host`` is loopback (``access.is_loopback``); True
    or False forces it. ``token``: the token to require (16..128 URL-safe characters; implies required when
    ``token_required`` is None), else a random one. ``server.url`` is the address to open (with the token),
    ``server.token`` the token or None."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    server_cls = type("BoundServer", (ExplorerServer,), {"address_family": family})
    try:
        server = server_cls((bare, port), type("BoundHandler", (Handler,), {"api": Api(data)}))
    except OSError as exc:
        raise RnnlensError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    try:
        access = Access.for_host(bare, server.server_address[1], token_required, token)
    except RnnlensError:
        server.server_close()
        raise
    server.access = access
    server.RequestHandlerClass.access = access
    return server


def serve_in_thread(server: ExplorerServer) -> threading.Thread:
    """Start ``serve_forever`` in a daemon thread (stop with ``server.shutdown(); server.server_close()``)."""
    t = threading.Thread(target=server.serve_forever, name="rnnlens-explorer", daemon=True)
    t.start()
    return t
