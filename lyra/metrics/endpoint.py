"""Serving ``/metrics`` on loopback and recording where, so Prometheus can find every process.

:class:`MetricsEndpoint` starts prometheus_client's WSGI server on ``127.0.0.1`` (a chosen port,
or an ephemeral one with ``port=0``) in a daemon thread and records the address in
``metrics_endpoints``. Metrics are never a reason to stop trading: a port in use falls back to
an ephemeral port with a warning naming the port, and a database that cannot record the
endpoint is logged and skipped; the process goes on either way.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import start_wsgi_server
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from lyra.store.engine import writer
from lyra.store.tables_metrics import metrics_endpoints as me

log = logging.getLogger(__name__)

#: Metrics listen here only: Prometheus on the same host scrapes them, nothing else reaches them.
LOOPBACK = "127.0.0.1"


class MetricsEndpoint:
    """``/metrics`` of one process, on loopback, recorded in the database (see the module doc).

    ``kind`` is ``session``, ``serve`` or ``scheduler``; ``name`` the session id or the host.
    """

    def __init__(self, registry: CollectorRegistry, *, kind: str, name: str, port: int = 0,
                 engine: Engine | None = None, address: str = LOOPBACK) -> None:
        self.registry = registry
        self.kind = kind
        self.name = name
        self.target = f"{kind}:{name}"
        self.engine = engine
        self.address = address
        self.requested_port = port
        self.port = 0
        #: what went wrong, if anything (a port in use, the database): said once, never raised
        self.warnings: list[str] = []
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/metrics`` (port 0 until started)."""
        return f"http://{self.address}:{self.port}/metrics"

    def start(self) -> MetricsEndpoint:
        """Listen (falling back to an ephemeral port if the chosen one is taken) and record it."""
        try:
            self._listen(self.requested_port)
        except OSError as exc:
            if not self.requested_port:
                self._warn(f"metrics for {self.target}: cannot listen on {self.address}: {exc}; "
                           "running without /metrics")
                return self
            self._warn(f"metrics for {self.target}: port {self.requested_port} on {self.address} is "
                       f"not available ({exc.strerror or exc}); serving on an ephemeral port instead "
                       "(see `lyra metrics targets`)")
            try:
                self._listen(0)
            except OSError as exc2:
                self._warn(f"metrics for {self.target}: cannot listen on {self.address}: {exc2}; "
                           "running without /metrics")
                return self
        self._record()
        return self

    def _listen(self, port: int) -> None:
        self._server, self._thread = start_wsgi_server(port, addr=self.address, registry=self.registry)
        self.port = int(self._server.server_port)
        log.debug("metrics for %s on %s", self.target, self.url)

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log.warning("%s", msg)

    def _record(self) -> None:
        if self.engine is None:
            return
        row = {"target": self.target, "kind": self.kind, "name": self.name, "host": socket.gethostname(),
               "pid": os.getpid(), "address": self.address, "port": self.port,
               "started_ts": time.time_ns() // 1_000_000}
        try:
            with writer(self.engine).begin() as conn:
                ins: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(me)
                conn.execute(ins.values(**row).on_conflict_do_update(
                    index_elements=["target"], set_={k: v for k, v in row.items() if k != "target"}))
        except Exception as exc:  # the endpoint still answers; Prometheus just cannot discover it
            self._warn(f"metrics for {self.target}: could not record the endpoint in the database "
                       f"({type(exc).__name__}: {exc}); run `lyra init` if the database is behind")

    def stop(self) -> None:
        """Stop listening and remove the record (only ours: another owner may have replaced it)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self.engine is not None and self.port:
            try:
                with writer(self.engine).begin() as conn:
                    conn.execute(sa.delete(me).where(me.c.target == self.target, me.c.pid == os.getpid(),
                                                     me.c.port == self.port))
            except Exception:  # ending must not fail on this: the row then lists a down target
                log.warning("could not remove the metrics endpoint of %s", self.target, exc_info=True)

    def __enter__(self) -> MetricsEndpoint:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def read_endpoints(engine: Engine) -> list[dict[str, Any]]:
    """Every recorded endpoint, by target."""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(me).order_by(me.c.target))]


__all__ = ["LOOPBACK", "MetricsEndpoint", "read_endpoints"]
