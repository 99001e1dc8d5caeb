"""``lyra serve``'s metrics: the database collector on its own loopback ``/metrics``, the
Prometheus ``file_sd`` targets file, and a periodic full audit verification.

:class:`ServeMetrics` is a small server of its own, started beside ``lyra serve`` (and by
``lyra metrics serve``), so the dashboards' server is untouched and a problem here never stops
it. Every ``refresh_s`` it rewrites the targets file atomically (a temporary file renamed over
the old one, so Prometheus never reads half a file) with every endpoint recorded for this
host: sessions, ``lyra serve`` itself, the scheduler. An unwritable file is reported once per
distinct error and retried at the next refresh.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from lyra.metrics.catalogue import BY_NAME
from lyra.metrics.database import DatabaseCollector, VerifyOutcome
from lyra.metrics.endpoint import MetricsEndpoint, read_endpoints
from lyra.metrics.session import standard_registry

log = logging.getLogger(__name__)

#: Default seconds between two rewrites of the targets file.
REFRESH_S = 10.0
#: Default seconds between two full audit verifications (0: never).
VERIFY_EVERY_S = 3600.0


def targets(engine: Engine, *, host: str | None = None) -> list[dict[str, Any]]:
    """The ``file_sd`` target groups of the endpoints recorded for ``host`` (default: this
    one; endpoints listen on loopback, so only this host's Prometheus can reach them)."""
    here = host or socket.gethostname()
    out = []
    for e in read_endpoints(engine):
        if e["host"] != here:
            continue
        out.append({"targets": [f"{e['address']}:{e['port']}"],
                    "labels": {"lyra_kind": e["kind"], "lyra_name": e["name"], "lyra_host": e["host"]}})
    return out


def write_targets(engine: Engine, path: Path, *, host: str | None = None) -> int:
    """Write the ``file_sd`` targets file atomically; returns how many targets it lists.
    Raises ``OSError`` (with the path) if it cannot be written."""
    groups = targets(engine, host=host)
    text = json.dumps(groups, indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".targets-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # Prometheus often runs as its own user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(groups)


class BackupCollector(Collector):
    """The backup folder's state: newest backup, newest verified one, a failed verification."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from lyra.backup.manifest import list_backups

        try:
            entries = list_backups(self.folder)
        except Exception as exc:  # a scrape must not fail on a damaged folder
            log.warning("metrics: cannot read backups in %s: %s", self.folder, exc)
            return
        n = GaugeMetricFamily("lyra_backups", BY_NAME["lyra_backups"].help)
        n.add_metric([], len(entries))
        yield n
        last = GaugeMetricFamily("lyra_backup_last_timestamp_seconds",
                                 BY_NAME["lyra_backup_last_timestamp_seconds"].help)
        ver = GaugeMetricFamily("lyra_backup_last_verified_timestamp_seconds",
                                BY_NAME["lyra_backup_last_verified_timestamp_seconds"].help)
        failed = GaugeMetricFamily("lyra_backup_verify_failed", BY_NAME["lyra_backup_verify_failed"].help)
        if entries:
            newest = entries[-1]
            last.add_metric([], newest.manifest.created_ms / 1000)
            failed.add_metric([], 1.0 if newest.verified is not None and not newest.verified_ok else 0.0)
            ok = [e for e in entries if e.verified_ok]
            # Never verified: exported as 0 (the epoch), so "backup too old" fires until one is.
            ver.add_metric([], ok[-1].manifest.created_ms / 1000 if ok else 0.0)
        yield from (last, ver, failed)


class ServeMetrics:
    """The database collector served on loopback, plus the targets file (module doc)."""

    def __init__(self, engine: Engine, *, port: int = 0, targets_file: Path | None = None,
                 refresh_s: float = REFRESH_S, verify_every_s: float = VERIFY_EVERY_S,
                 jsonl_path: Path | None = None, kind: str = "serve",
                 backups_dir: Path | None = None) -> None:
        self.engine = engine
        self.targets_file = targets_file
        self.refresh_s = refresh_s
        self.verify_every_s = verify_every_s
        self.jsonl_path = jsonl_path
        self.collector = DatabaseCollector(engine)
        self.registry = standard_registry()
        self.registry.register(self.collector)
        if backups_dir is not None:
            self.registry.register(BackupCollector(backups_dir))
        self.endpoint = MetricsEndpoint(self.registry, kind=kind, name=socket.gethostname(), port=port,
                                        engine=engine)
        self.warnings: list[str] = []
        self._last_error = ""
        self._next_verify = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ServeMetrics:
        """Listen, write the targets file once, then keep it (and the verification) current."""
        self.endpoint.start()
        self.warnings.extend(self.endpoint.warnings)
        self.refresh(verify=False)  # the targets at once; the first verification on the thread
        self._thread = threading.Thread(target=self._run, name="lyra-metrics", daemon=True)
        self._thread.start()
        return self

    def refresh(self, *, verify: bool = True) -> None:
        """Rewrite the targets file; run the verification if due. Never raises."""
        if self.targets_file is not None:
            try:
                n = write_targets(self.engine, self.targets_file)
                self._last_error = ""
                log.debug("metrics: %d targets in %s", n, self.targets_file)
            except Exception as exc:
                msg = (f"metrics: cannot write the Prometheus targets file {self.targets_file}: "
                       f"{type(exc).__name__}: {exc}; choose a writable path with --metrics-targets "
                       "(lyra serve keeps running)")
                if msg != self._last_error:  # once per distinct error, not every refresh
                    self._last_error = msg
                    self.warnings.append(msg)
                    log.warning("%s", msg)
        if verify and self.verify_every_s > 0 and time.monotonic() >= self._next_verify:
            self._next_verify = time.monotonic() + self.verify_every_s
            self.run_verify()

    def run_verify(self) -> VerifyOutcome | None:
        """A full ``audit verify``; its outcome is exported. Never raises."""
        from lyra.audit.verify import verify

        try:
            report = verify(self.engine, self.jsonl_path, workers=1)
        except Exception as exc:
            log.warning("metrics: audit verification could not run: %s: %s", type(exc).__name__, exc)
            return None
        outcome = VerifyOutcome(ok=report.ok, ts=time.time(), problems=len(report.problems))
        self.collector.verify = outcome
        return outcome

    def _run(self) -> None:
        if self.verify_every_s > 0:
            self._next_verify = time.monotonic() + self.verify_every_s
            self.run_verify()
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    def stop(self) -> None:
        """Stop the refresh thread and the endpoint (removing its record)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        self.endpoint.stop()
        self.refresh(verify=False)  # the file no longer lists this process


def default_targets_file(home: Path) -> Path:
    """``$LYRA_HOME/prometheus/targets.json``."""
    return home / "prometheus" / "targets.json"


@contextmanager
def serve_metrics(*, demo: bool = False, port: int = 0, targets_file: Path | None = None,
                  refresh_s: float = REFRESH_S, verify_every_s: float = VERIFY_EVERY_S
                  ) -> Iterator[ServeMetrics | None]:
    """Run :class:`ServeMetrics` on the installation's database for the duration of the block
    (what ``lyra serve`` does). Yields None, with a warning, if it cannot start: the dashboards
    are served either way."""
    from lyra.bootstrap import open_engine
    from lyra.settings import load_settings

    sm: ServeMetrics | None = None
    engine = None
    try:
        settings = load_settings(demo=True) if demo else load_settings()
        _, engine = open_engine(settings)
        sm = ServeMetrics(engine, port=port, targets_file=targets_file or default_targets_file(settings.home),
                          refresh_s=refresh_s, verify_every_s=verify_every_s,
                          jsonl_path=settings.audit_dir / "events.jsonl",
                          backups_dir=settings.home / "backups").start()
    except Exception as exc:
        log.warning("metrics: not started (%s: %s); serving without /metrics", type(exc).__name__, exc)
        if engine is not None:
            engine.dispose()
        engine = None
        sm = None
    try:
        yield sm
    finally:
        if sm is not None:
            sm.stop()
        if engine is not None:
            engine.dispose()


__all__ = ["REFRESH_S", "VERIFY_EVERY_S", "ServeMetrics", "default_targets_file", "serve_metrics", "targets",
           "write_targets"]
