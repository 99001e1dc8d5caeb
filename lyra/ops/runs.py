"""The run registry: papermill runs of parameterised notebooks, archived and reproducible.

``run_notebook(path, {"name": value})`` validates the notebook and its parameters *before*
anything is created, registers a ``running`` row, executes the notebook with papermill into
``$LYRA_HOME/runs/<run-id>/`` and finishes the row as ``finished`` or ``failed`` (with the
error and the failing cell; the executed notebook is saved either way).

A run directory holds::

    notebook.ipynb      the executed notebook (outputs included)
    parameters.json     the parameters passed (defaults are in the notebook itself)
    run.json            status, start/end, error, data fingerprint, lyra version, git commit
    environment.json    every installed package and its version
    reads.json          the data ranges and files the notebook said it read (lyra.ops.context)
    results.json        the key results the notebook recorded (lyra.ops.context)
    kernel.log          the kernel's stderr (quiet runs); worker.log: a scheduled run's output

A notebook that records no reads gets the fingerprint of nothing (``data_covered`` False):
``lyra run`` and ``lyra runs show`` say so, and a rerun reports "data not recorded" instead of
claiming the data was the same.

Read side for dashboards: :func:`list_runs` and :func:`get_run` return plain dicts.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.core.errors import ConfigError, ValidationError
from lyra.ops.context import ENV_RUN_DIR, ENV_RUN_ID, READS_FILE, RESULTS_FILE, read_entry
from lyra.ops.lifecycle import STATUSES, finish_run, new_run_id, now_ms, read_liveness
from lyra.store.tables_ops import runs

log = logging.getLogger(__name__)

KERNEL = "python3"
EMPTY_FINGERPRINT = hashlib.sha256().hexdigest()  # lyra.ops.fingerprint.EMPTY, without its imports
_UNSET = object()


# ---------------------------------------------------------------------------- validation
@dataclass(frozen=True, slots=True)
class RunPlan:
    """A validated request: the notebook, its declared defaults and the parameters to pass."""

    notebook: Path
    parameters: dict[str, Any]
    defaults: dict[str, Any] = field(default_factory=dict)


def notebook_parameters(notebook: str | Path) -> dict[str, Any]:
    """The defaults declared in the notebook's cell tagged ``parameters`` (literals only).

    Raises ValidationError naming the notebook if it is missing, is not a notebook, or has no
    (or an unreadable) parameters cell."""
    import nbformat

    path = Path(notebook).expanduser()
    if not path.is_file():
        raise ValidationError("notebook", str(notebook), "file not found")
    try:
        nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    except Exception as exc:  # nbformat raises several unrelated types for a bad file
        raise ValidationError("notebook", str(notebook), f"not a readable notebook: {exc}") from None
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        raise ValidationError("notebook", str(notebook), "has no cell tagged 'parameters'",
                              "tag the cell holding the defaults with 'parameters' (papermill)")
    defaults: dict[str, Any] = {}
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as exc:
        raise ValidationError("notebook", str(notebook),
                              f"parameters cell is not valid Python: {exc}") from None
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        if target is None or value is None:
            continue
        try:
            defaults[target] = ast.literal_eval(value)
        except ValueError:
            defaults[target] = _UNSET  # an expression: accept any value for it
    return defaults


def _kind(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "dict"
    return "any"


def _coerce(name: str, default: Any, value: Any, raw: bool) -> Any:
    """``value`` as the type of the notebook's default; raw CLI text is parsed first."""
    kind = "any" if default is _UNSET else _kind(default)
    want = {"int": "an integer", "float": "a number", "bool": "true or false", "list": "a JSON list",
            "dict": "a JSON object"}

    def bad(problem: str) -> ValidationError:
        return ValidationError(f"parameters.{name}", value, problem,
                               f"the notebook's default is {default!r}" if default is not _UNSET else None)

    if raw and isinstance(value, str):
        text = value.strip()
        if kind == "str":
            return value
        if kind == "int":
            try:
                return int(text)
            except ValueError:
                raise bad(f"expected {want['int']}") from None
        if kind == "float":
            try:
                number = float(text)
            except ValueError:
                raise bad(f"expected {want['float']}") from None
            if not math.isfinite(number):
                raise bad("expected a finite number")
            return number
        if kind == "bool":
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise bad(f"expected {want['bool']}")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            if kind in ("list", "dict"):
                raise bad(f"expected {want[kind]}") from None
            return value  # None or expression defaults: plain text
        value = parsed
    vk = _kind(value)
    if vk == "float" and not math.isfinite(value):
        raise bad("expected a finite number")
    if kind in ("none", "any") or vk == kind or (kind == "float" and vk == "int"):
        return list(value) if isinstance(value, tuple) else value
    if vk == "none":
        return None  # None clears any parameter ("use the notebook's fallback")
    raise bad(f"expected {want.get(kind, kind)}, got {vk}")


def plan_run(notebook: str | Path, parameters: Mapping[str, Any] | Sequence[tuple[str, str]] = (),
             *, raw: bool | None = None) -> RunPlan:
    """Validate a run request without creating anything.

    ``parameters`` is a mapping of typed values, or ``(name, text)`` pairs from the command
    line (``raw``: parsed to the type of the notebook's default). Unknown names and values of
    the wrong type raise ValidationError naming the parameter."""
    path = Path(notebook).expanduser().resolve()
    defaults = notebook_parameters(path)
    pairs = list(parameters.items()) if isinstance(parameters, Mapping) else list(parameters)
    if raw is None:
        raw = not isinstance(parameters, Mapping)
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name not in defaults:
            raise ValidationError(f"parameters.{name}", value, f"unknown parameter of {path.name}",
                                  "known: " + (", ".join(defaults) or "none"))
        out[name] = _coerce(name, defaults[name], value, raw)
    return RunPlan(path, out, {k: v for k, v in defaults.items() if v is not _UNSET})


# ---------------------------------------------------------------------------- provenance
def lyra_version() -> str:
    try:
        return importlib.metadata.version("lyra")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


_GIT: dict[str, str] = {}


def git_commit() -> str:
    """The commit of the checkout Lyra is imported from (``+dirty`` if it has local
    changes to tracked files), or ``unknown`` outside a git checkout."""
    if "commit" in _GIT:
        return _GIT["commit"]
    root = Path(__file__).resolve().parents[2]
    commit = "unknown"
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                 text=True, timeout=5, check=True)
            commit = out.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "lyra"],
                                   capture_output=True, timeout=5, check=False)
            if dirty.returncode == 1:
                commit += "+dirty"
        except (OSError, subprocess.SubprocessError):
            commit = "unknown"
    _GIT["commit"] = commit
    return commit


def package_versions() -> dict[str, str]:
    """Every installed distribution and its version (importlib.metadata), sorted by name."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out[str(name).lower()] = str(dist.version)
    return dict(sorted(out.items()))


def _sha256_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    tmp.replace(path)


# ---------------------------------------------------------------------------- registry
def register_run(engine: Engine, plan: RunPlan, runs_dir: Path, *, run_id: str | None = None,
                 rerun_of: str = "", schedule_name: str | None = None, fire_ts: int | None = None,
                 attempt: int = 1, status: str = "running", error: str = "", at_ms: int | None = None) -> str:
    """Create the run's folder and its ``running`` row (one transaction); return the run id.
    ``at_ms`` is its start time (default: now; the scheduler passes its own clock's time).
    A scheduled fire that is already registered raises sqlalchemy's IntegrityError."""
    run_id = run_id or new_run_id()
    out = runs_dir / run_id
    out.mkdir(parents=True, exist_ok=False)
    _write_json(out / "parameters.json", plan.parameters)
    t = now_ms() if at_ms is None else at_ms
    row = {"run_id": run_id, "notebook": str(plan.notebook),
           "parameters": json.dumps(plan.parameters, sort_keys=True, default=str),
           "status": status, "created_ts": t, "started_ts": t, "output_dir": str(out), "rerun_of": rerun_of,
           "schedule_name": schedule_name, "fire_ts": fire_ts, "attempt": attempt,
           "owner": f"{socket.gethostname()}:{os.getpid()}", "error": error,
           "ended_ts": t if status != "running" else None}
    try:
        with engine.begin() as c:
            c.execute(runs.insert().values(**row))
    except Exception:
        (out / "parameters.json").unlink(missing_ok=True)
        out.rmdir()
        raise
    return run_id


@contextlib.contextmanager
def _kernel_env(values: Mapping[str, str]) -> Iterator[None]:
    """The kernel papermill starts inherits os.environ: set the run's variables around it."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute_registered(engine: Engine, run_id: str, *, settings: Any = None, progress: bool = True,
                       log_output: bool = False,
                       during: contextlib.AbstractContextManager[Any] | None = None) -> dict[str, Any]:
    """Execute a registered ``running`` run with papermill and record its outcome. Returns
    :func:`get_run` of it. Never raises for a failing notebook: the run is marked failed.
    ``during`` wraps the papermill call only (the scheduler's worker: its heartbeat)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from lyra.ops.fingerprint import fingerprint
    from lyra.settings import load_settings

    settings = settings or load_settings()
    row = get_run(engine, run_id)
    if row is None:
        raise ConfigError("run_id", run_id, "no such run")
    out = Path(row["output_dir"])
    nb_path = Path(row["notebook"])
    env = {ENV_RUN_ID: run_id, ENV_RUN_DIR: str(out), "LYRA_HOME": str(settings.home),
           "LYRA_DATABASE_URL": settings.db_url}
    meta: dict[str, Any] = {"run_id": run_id, "notebook": str(nb_path),
                            "notebook_sha256": hashlib.sha256(nb_path.read_bytes()).hexdigest(),
                            "parameters": row["parameters"], "kernel": KERNEL,
                            "started_ts": row["started_ts"], "rerun_of": row["rerun_of"]}
    status, error, cell = "finished", "", None
    # Quiet runs: the kernel's own stderr (start-up warnings, crashes) goes to kernel.log in the
    # run folder, not to the terminal.
    quiet = not (progress or log_output)
    extra = {"kernel_manager_class": _file_stderr_manager(out / "kernel.log")} if quiet else {}
    try:
        with during or contextlib.nullcontext(), _kernel_env(env):
            pm.execute_notebook(str(nb_path), str(out / "notebook.ipynb"), parameters=row["parameters"],
                                kernel_name=KERNEL, progress_bar=progress, log_output=log_output,
                                cwd=str(out), request_save_on_cell_execute=True, **extra)
    except PapermillExecutionError as exc:
        status, cell = "failed", _failed_source_cell(out / "notebook.ipynb", int(exc.cell_index))
        error = f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # kernel died, bad kernel name...: still a failed, recorded run
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    # Provenance after the run (it cannot change during it): papermill starts sooner.
    packages = package_versions()
    _write_json(out / "environment.json", packages)
    meta.update(lyra_version=lyra_version(), git_commit=git_commit(), env_hash=_sha256_json(packages))
    reads_path, results_path = out / READS_FILE, out / RESULTS_FILE
    reads = [read_entry(d) for d in json.loads(reads_path.read_text())] if reads_path.exists() else []
    fp = fingerprint(settings.market_dir, reads)
    recorded = json.loads(results_path.read_text()) if results_path.exists() else {}
    results = recorded.get("results", {})
    meta.update(status=status, error=error, error_cell=cell, ended_ts=now_ms(), fingerprint=fp,
                key_results=results, info=recorded.get("info", {}))
    finish_run(engine, run_id, status, error=error, error_cell=cell, fingerprint=fp["sha256"],
               lyra_version=meta["lyra_version"], git_commit=meta["git_commit"], env_hash=meta["env_hash"],
               key_results=json.dumps(results, sort_keys=True, default=str), ended_ts=meta["ended_ts"])
    final = get_run(engine, run_id)
    assert final is not None
    meta["status"] = final["status"]
    _write_json(out / "run.json", meta)
    return final


def _file_stderr_manager(path: Path) -> type:
    """A jupyter kernel manager whose kernels write their stderr to ``path``."""
    from jupyter_client.manager import AsyncKernelManager

    class _FileStderrKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            with open(path, "ab") as fh:  # the kernel holds its own copy of the descriptor
                kw.setdefault("stderr", fh)
                await super().start_kernel(**kw)

    return _FileStderrKernelManager


def _failed_source_cell(executed: Path, fallback: int) -> int:
    """Index (0-based) in the *source* notebook of the cell that raised: the executed copy has
    papermill's injected-parameters cell and error banners in addition."""
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)  # type: ignore[no-untyped-call]
    except Exception:
        return fallback
    i = 0
    for c in nb.cells:
        tags = c.metadata.get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        if any(o.get("output_type") == "error" for o in c.get("outputs", [])):
            return i
        i += 1
    return fallback


def run_notebook(notebook: str | Path, parameters: Mapping[str, Any] | Sequence[tuple[str, str]] = (), *,
                 engine: Engine | None = None, settings: Any = None, progress: bool = True,
                 log_output: bool = False, rerun_of: str = "") -> dict[str, Any]:
    """Validate, register and execute a notebook run; returns the run as :func:`get_run`.

    Bad input (missing notebook, no parameters cell, unknown or mistyped parameter) raises
    ValidationError before anything is created."""
    plan = plan_run(notebook, parameters)
    settings, engine = _open(settings, engine)
    run_id = register_run(engine, plan, settings.runs_dir, rerun_of=rerun_of)
    return execute_registered(engine, run_id, settings=settings, progress=progress, log_output=log_output)


def rerun(run_id: str, *, engine: Engine | None = None, settings: Any = None, progress: bool = True,
          log_output: bool = False) -> dict[str, Any]:
    """Re-execute a run with the same notebook and parameters and compare with it.

    The new run's ``comparison`` says whether the key results match exactly
    (``results_match``), whether the data read hashed the same (``fingerprint_match``) and
    whether the notebook file is unchanged (``notebook_match``). Notebooks that derive a
    session id from the run id (the paper-session notebook's default) replay a *fresh*
    session, so a match is a real reproduction, not a read-back of the first run's log."""
    settings, engine = _open(settings, engine)
    old = get_run(engine, run_id)
    if old is None:
        raise ValidationError("rerun", run_id, "no such run", "see `lyra runs list`")
    if old["status"] in ("queued", "running"):
        raise ValidationError("rerun", run_id, f"is still {old['status']}")
    new = run_notebook(old["notebook"], old["parameters"], engine=engine, settings=settings,
                       progress=progress, log_output=log_output, rerun_of=run_id)
    cmp = compare_runs(old, new)
    with engine.begin() as c:
        c.execute(runs.update().where(runs.c.run_id == new["run_id"])
                  .values(comparison=json.dumps(cmp, sort_keys=True)))
    meta_path = Path(new["output_dir"]) / "run.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        meta["comparison"] = cmp
        _write_json(meta_path, meta)
    out = get_run(engine, new["run_id"])
    assert out is not None
    return out


def compare_runs(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Verdict of a rerun: exact equality of key results, data fingerprint and notebook."""
    a, b = old["key_results"], new["key_results"]
    diffs = sorted(k for k in set(a) | set(b) if a.get(k, _UNSET) != b.get(k, _UNSET))

    def nb_hash(r: Mapping[str, Any]) -> str | None:
        p = Path(r["output_dir"]) / "run.json"
        return json.loads(p.read_text()).get("notebook_sha256") if p.exists() else None

    return {"of": old["run_id"], "results_match": not diffs and bool(a) and new["status"] == "finished",
            "differences": diffs, "fingerprint_match": old["fingerprint"] == new["fingerprint"],
            "data_covered": old["fingerprint"] not in ("", EMPTY_FINGERPRINT)
            and new["fingerprint"] not in ("", EMPTY_FINGERPRINT),
            "notebook_match": nb_hash(old) == nb_hash(new), "status": new["status"]}


def _open(settings: Any, engine: Engine | None) -> tuple[Any, Engine]:
    from lyra.bootstrap import open_engine
    from lyra.settings import load_settings

    settings = settings or load_settings()
    if engine is None:
        settings, engine = open_engine(settings)
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    return settings, engine


# ---------------------------------------------------------------------------- read side
def _as_dict(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    d["parameters"] = json.loads(d["parameters"])
    d["key_results"] = json.loads(d["key_results"] or "{}")
    live = read_liveness(d["status"], d["comparison"])
    d["heartbeat_ts"] = None if live is None else live["heartbeat_ts"]
    d["heartbeat_s"] = None if live is None else live["heartbeat_s"]
    d["comparison"] = json.loads(d["comparison"]) if d["comparison"] and live is None else None
    end = d["ended_ts"]
    d["duration_s"] = None if end is None or d["status"] == "skipped" else (end - d["started_ts"]) / 1000
    d["data_covered"] = d["fingerprint"] not in ("", EMPTY_FINGERPRINT)
    return d


def get_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """One run as a plain dict (parameters, key_results and comparison decoded; duration_s),
    or None."""
    with engine.connect() as c:
        r = c.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    return None if r is None else _as_dict(r)


def list_runs(engine: Engine, *, status: str | None = None, notebook: str | None = None,
              schedule: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Runs newest first, as :func:`get_run` dicts; filter by status, notebook file name
    (``paper_session.ipynb`` or a full path) or schedule name."""
    if status is not None and status not in STATUSES:
        raise ValidationError("status", status, "unknown run status", "one of " + ", ".join(STATUSES))
    q = sa.select(runs).order_by(runs.c.created_ts.desc(), runs.c.run_id.desc()).limit(limit)
    if status:
        q = q.where(runs.c.status == status)
    if schedule:
        q = q.where(runs.c.schedule_name == schedule)
    with engine.connect() as c:
        rows = [_as_dict(r) for r in c.execute(q)]
    if notebook:
        rows = [r for r in rows if r["notebook"] == notebook or Path(r["notebook"]).name == notebook]
    return rows
