"""The worker's HTTP endpoint, on loopback by default (``VOLSTREAM_METRICS_HOST``):
``/metrics`` for Prometheus and ``/`` the live page, with the JSON it polls
(``/live/overview.json``, ``/live/detail.json?u=UNDERLYING``). Served from threads of its
own: a page never waits on the stream, nor the stream on a page."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import urllib.parse
from importlib.resources import files

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.live.view import LiveView

__all__ = ["serve"]

log = logging.getLogger(__name__)

PAGE = files("streams.live").joinpath("page.html")


def _handler(registry: CollectorRegistry, view: LiveView) -> type:
    page = PAGE.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/metrics":
                return self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            if url.path in ("/", "/live"):
                return self._send(200, "text/html; charset=utf-8", page)
            if url.path == "/live/overview.json":
                return self._json(view.overview())
            if url.path == "/live/detail.json":
                underlying = urllib.parse.parse_qs(url.query).get("u", [""])[0]
                return self._json(view.detail(underlying))
            return self._send(404, "text/plain", b"not here: try / or /metrics\n")

        def _json(self, data) -> None:
            body = json.dumps(data, allow_nan=False, separators=(",", ":")).encode()
            self._send(200, "application/json", body)

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # a page polls every second: no log line each
            pass

    return Handler


def serve(registry: CollectorRegistry, view: LiveView, host: str, port: int) -> int | None:
    """Serve ``/metrics`` and the live page on ``host:port`` (0: nothing) in daemon threads;
    the port (None when not served). A port in use is logged, never fatal: a worker must not
    stop calibrating for want of a page."""
    if not port:
        return None
    try:
        server = http.server.ThreadingHTTPServer((host, port), _handler(registry, view))
    except OSError as exc:
        log.warning("metrics and live page not served on %s:%d: %s", host, port, exc)
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.warning("live page on http://%s:%d/ , metrics on /metrics", host, port)
    return server.server_address[1]
