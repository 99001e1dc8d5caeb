"""``lyra serve``: the Panel server with every app in ``apps/`` on 127.0.0.1, behind the auth
proxy on the public port.

    lyra serve --host 0.0.0.0 --port 8080            # needs a signing key (see below)
    lyra serve --demo                                 # local try-out: makes a key if none

Behind nginx (``deploy/nginx/lyra.conf``): ``--behind-tls-proxy`` (Secure ``__Host-`` cookies,
HSTS), ``--allowed-host lyra.example.org`` (the Host names requests may carry; loopback names
are always allowed) and, if the client address should come from nginx's ``X-Forwarded-For``,
``--trusted-proxy 127.0.0.1`` (nginx's address; note that on one machine every local process
shares it).

The signing key comes from ``LYRA_JWT_SECRET`` or ``$LYRA_HOME/secrets/jwt.key`` (mode 0600);
outside ``--demo`` a missing or weak key stops the server before anything listens. The Panel
child process gets the key on stdin, never on its command line or in its environment.

From Python (tests, notebooks)::

    with LyraServer(settings, port=0) as server:
        print(server.url)
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from aiohttp import web

from lyra.auth._util import Clock, utc_now
from lyra.auth.panel_auth import discover_apps
from lyra.auth.proxy import AuthProxy, ProxyConfig
from lyra.auth.service import AuthService
from lyra.core.errors import ConfigError, LyraError

log = logging.getLogger(__name__)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for tests and ``--panel-port 0``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_apps_dir() -> Path:
    """``./apps`` when it exists, else the ``apps/`` folder next to the lyra package."""
    here = Path.cwd() / "apps"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "apps"


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LyraError(f"the Panel server exited at start (code {proc.returncode}); see its log above")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise LyraError(f"the Panel server did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


class LyraServer:
    """The Panel child process plus the auth proxy, started and stopped together.

    ``start()`` runs the proxy on a background thread (its own event loop) and returns once
    both listen; ``serve_forever()`` runs it in the calling thread until SIGINT/SIGTERM.
    """

    def __init__(
        self,
        settings: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        panel_port: int = 0,
        apps_dir: Path | None = None,
        clock: Clock = utc_now,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        behind_tls_proxy: bool = False,
        trusted_proxies: Sequence[str] = (),
        allowed_hosts: Sequence[str] | None = None,
        refresh_grace: float = 10.0,
        ws_check_interval: float = 30.0,
        service: AuthService | None = None,
        panel_log: Path | None = None,
        **service_kwargs: Any,
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port or free_port()
        self.panel_port = panel_port or free_port()
        self.apps_dir = apps_dir or default_apps_dir()
        self.apps = discover_apps(self.apps_dir)
        # Refuses a missing/weak key (outside demo mode) before anything listens.
        self.service = service or AuthService.from_settings(settings, clock=clock, **service_kwargs)
        self.ssl_context: ssl.SSLContext | None = None
        if tls_cert and tls_key:
            self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                self.ssl_context.load_cert_chain(str(tls_cert), str(tls_key))
            except BaseException:
                if service is None:  # the engine we just opened would otherwise leak
                    self.service.engine.dispose()
                raise
        self.tls = self.ssl_context is not None or behind_tls_proxy
        self.proxy = AuthProxy(
            self.service,
            ProxyConfig(
                upstream=f"http://127.0.0.1:{self.panel_port}",
                apps=self.apps,
                tls=self.tls,
                trusted_proxies=tuple(trusted_proxies),
                allowed_hosts=default_allowed_hosts(host, allowed_hosts),
                refresh_grace=refresh_grace,
                ws_check_interval=ws_check_interval,
            ),
        )
        self.panel_log = panel_log
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The public base URL."""
        scheme = "https" if self.ssl_context else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"{scheme}://{host}:{self.port}"

    @property
    def panel_url(self) -> str:
        """Where the Panel server listens (loopback only)."""
        return f"http://127.0.0.1:{self.panel_port}"

    # ------------------------------------------------------------------ panel child

    def _start_panel(self, timeout: float = 90.0) -> None:
        env = {k: v for k, v in os.environ.items() if k != "LYRA_JWT_SECRET"}
        env["LYRA_HOME"] = str(self.settings.home)
        if self.settings.database_url:
            env["LYRA_DATABASE_URL"] = self.settings.database_url
        out = open(self.panel_log, "ab") if self.panel_log else None  # noqa: SIM115 - child owns it
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lyra.auth.panel_auth",
                "--port",
                str(self.panel_port),
                "--apps-dir",
                str(self.apps_dir),
            ],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            env=env,
        )
        if out is not None:
            out.close()
        assert self._proc.stdin is not None
        cookie_secret = secrets.token_urlsafe(48)
        self._proc.stdin.write(f"{self.service.signing_secret().hex()}\n{cookie_secret}\n".encode())
        # The pipe stays open: the child exits when it closes, so the Panel server never
        # outlives this process (even after a crash or SIGKILL of the parent).
        self._proc.stdin.flush()
        try:
            _wait_for_port(self.panel_port, self._proc, timeout)
        except BaseException:
            self._stop_panel()
            raise

    def _stop_panel(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    # ------------------------------------------------------------------ proxy

    async def _start_proxy(self) -> None:
        self._runner = web.AppRunner(self.proxy.make_app(), access_log=logging.getLogger("lyra.access"))
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()

    def start(self) -> LyraServer:
        """Start Panel and the proxy (on a background thread); returns once both listen."""
        self._start_panel()
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_proxy())
            except BaseException as exc:
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            assert self._runner is not None
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="lyra-proxy", daemon=True)
        self._thread.start()
        started.wait(30)
        if errors:
            self._stop_panel()
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop the proxy and the Panel process (idempotent)."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
            self._loop = None
        self._stop_panel()
        try:
            self.service.flush_failures()  # the counts of the last minute's failures
        except Exception:  # the database may be gone at shutdown: the log line says so
            log.exception("could not write the pending failure counts")
        self.service.engine.dispose()

    def __enter__(self) -> LyraServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Run until SIGINT/SIGTERM in this thread (what ``lyra serve`` does)."""
        self._start_panel()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            loop.run_until_complete(self._start_proxy())
            log.info("lyra serve: %s -> Panel on %s (%d apps)", self.url, self.panel_url, len(self.apps))
            print(
                f"lyra serve: listening on {self.url} (Panel on {self.panel_url}, {len(self.apps)} apps)",
                flush=True,
            )
            loop.run_until_complete(stop.wait())
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.close()
            self._stop_panel()
            self.service.flush_failures()


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def default_allowed_hosts(bind_host: str, extra: Sequence[str] | None) -> tuple[str, ...]:
    """The Host names the proxy answers: loopback names, the bound address (unless a wildcard)
    and ``extra`` (``--allowed-host``)."""
    names = list(LOOPBACK_NAMES)
    if bind_host not in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
        names.append(bind_host)
    names += list(extra or ())
    return tuple(dict.fromkeys(n.lower().strip("[]") for n in names))


def serve_command(
    host: Annotated[str, typer.Option(help="Public address of the auth proxy.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Public port of the auth proxy.")] = 8080,
    panel_port: Annotated[int, typer.Option(help="Loopback port of the Panel server (0: any free).")] = 0,
    apps_dir: Annotated[Path | None, typer.Option(help="Folder of apps (default ./apps).")] = None,
    demo: Annotated[bool, typer.Option(help="Demo mode: create a signing key if there is none.")] = False,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM) to serve HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    behind_tls_proxy: Annotated[
        bool,
        typer.Option(
            help="A TLS-terminating proxy (nginx) is in front: Secure __Host- cookies, HSTS."
        ),
    ] = False,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(help="Address or network whose X-Forwarded-For is believed (repeatable)."),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(help="Host name clients use (repeatable; loopback names are always allowed)."),
    ] = None,
) -> None:
    """Serve the dashboards behind the auth proxy (login with password + TOTP)."""
    from lyra.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = load_settings(demo=True) if demo else load_settings()
        settings.ensure_home()
        from lyra.bootstrap import open_engine

        _, engine = open_engine(settings)  # refuses an unreachable or unmigrated database early
        try:
            server = LyraServer(
                settings,
                host=host,
                port=port,
                panel_port=panel_port,
                apps_dir=apps_dir,
                tls_cert=tls_cert,
                tls_key=tls_key,
                behind_tls_proxy=behind_tls_proxy,
                trusted_proxies=trusted_proxy or (),
                allowed_hosts=allowed_host or (),
            )
        finally:
            engine.dispose()  # also when the server refuses (a weak key): no connection left open
    except (ConfigError, LyraError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if host not in ("127.0.0.1", "::1", "localhost") and not server.tls:
        typer.echo(
            "warning: serving on a public address without TLS; put nginx with TLS in front "
            "(deploy/nginx/lyra.conf) and pass --behind-tls-proxy",
            err=True,
        )
    server.serve_forever()
