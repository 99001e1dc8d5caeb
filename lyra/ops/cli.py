"""``lyra run``, ``lyra runs list|show`` and ``lyra schedule add|list|remove|pause|resume|fire|run``.

``lyra.cli`` mounts :func:`run_command`, :data:`runs_app` and :data:`schedule_app`; the same
commands are reachable without it as ``python -m lyra.ops.cli run|runs|schedule ...``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lyra.core.errors import LyraError

console = Console(soft_wrap=True)  # one line per message: no wrapping at the terminal's width
err = Console(stderr=True, soft_wrap=True)

# ``-p NAME VALUE`` (papermill's form): typer has no repeatable two-value option, so ``-p`` takes
# the NAME and the VALUEs are the positionals after the notebook, in order. ``-p NAME=VALUE`` is
# also accepted and is the way to pass a value that starts with '-'.
ParamOpt = Annotated[list[str] | None, typer.Option(
    "-p", "--parameter", metavar="NAME VALUE",
    help="A notebook parameter (repeat): -p NAME VALUE or -p NAME=VALUE. Parsed to the type of the "
    "notebook's default (JSON for lists and dicts).")]


def _pairs(names: list[str] | None, values: list[str]) -> list[tuple[str, str]]:
    """Pair ``-p`` names with the positional values that followed them."""
    out: list[tuple[str, str]] = []
    rest = list(values)
    for n in names or []:
        if "=" in n:
            k, _, v = n.partition("=")
            out.append((k, v))
        elif rest:
            out.append((n, rest.pop(0)))
        else:
            _fail(f"-p {n}: missing VALUE (use -p NAME VALUE or -p NAME=VALUE)")
    if rest:
        _fail(f"unexpected argument(s) {' '.join(rest)!s}: give parameters as -p NAME VALUE")
    return out


def _fail(msg: str) -> None:
    err.print(f"[bold red]error:[/] {escape(msg)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _fmt_ts(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else ""


def _engine() -> tuple[Any, Any]:
    from lyra.bootstrap import open_engine

    return open_engine()


def _show_papermill_output() -> None:
    # Cell outputs (the notebook's own progress bars and prints) go through papermill's logger.
    pm_log = logging.getLogger("papermill")
    if not logging.getLogger().handlers and not pm_log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        pm_log.addHandler(h)
    pm_log.setLevel(logging.INFO)


def _summary(r: dict[str, Any]) -> None:
    colour = {"finished": "green", "failed": "red", "timeout": "red"}.get(r["status"], "yellow")
    console.print(f"run [bold]{r['run_id']}[/]: [{colour}]{r['status']}[/] in {r['duration_s'] or 0:.1f} s "
                  f"-> {r['output_dir']}")
    if r["error"]:
        console.print(f"  error in cell {r['error_cell']}: {r['error']}")
    small = {k: v for k, v in r["key_results"].items() if not isinstance(v, (list, dict))}
    if small:
        console.print("  key results: " + ", ".join(f"{k}={v}" for k, v in small.items()))
    if r["data_covered"]:
        fp = f"data fingerprint {r['fingerprint'][:16]}…"
    elif r["status"] in ("finished", "failed"):
        fp = ("[yellow]data fingerprint covers NO data[/] (the notebook recorded no reads: "
              "record_reads/record_files in lyra.ops.context)")
    else:
        fp = "no data fingerprint"
    console.print(f"  {fp}  lyra {r['lyra_version']}  commit {r['git_commit'][:12]}")
    cmp = r.get("comparison")
    if cmp:
        verdict = "[green]MATCH[/]" if cmp["results_match"] else "[red]MISMATCH[/]"
        data = ("same" if cmp["fingerprint_match"] else "CHANGED") if cmp.get("data_covered", True) \
            else "not recorded (cannot tell if it changed)"
        console.print(f"  rerun of {cmp['of']}: results {verdict}"
                      + (f" (differ: {', '.join(cmp['differences'])})" if cmp["differences"] else "")
                      + f"; data {data}"
                      + f"; notebook {'same' if cmp['notebook_match'] else 'CHANGED'}")


def run_command(
    args: Annotated[list[str] | None, typer.Argument(
        metavar="NOTEBOOK", help="The notebook (.ipynb) to execute (then the -p VALUEs).")] = None,
    parameter: ParamOpt = None,
    rerun: Annotated[str | None, typer.Option("--rerun", help="Re-execute RUN_ID with its parameters "
                                              "and compare the results.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose/--quiet", "-v",
                                          help="Show papermill's progress bar and the cells' output "
                                          "(default: quiet, only the run's summary).")] = False,
) -> None:
    """Execute a notebook with papermill, recorded as a run in $LYRA_HOME/runs/<run-id>/.

    Exit code 0 if the run finished (and, for --rerun, its results matched), 1 otherwise."""
    from lyra.ops.runs import plan_run, run_notebook
    from lyra.ops.runs import rerun as do_rerun

    positional = list(args or [])
    quiet = not verbose
    if verbose:
        _show_papermill_output()
    try:
        if rerun:
            if positional or parameter:
                _fail("--rerun takes no notebook or -p: it reuses the run's own")
            r = do_rerun(rerun, progress=not quiet, log_output=not quiet)
        else:
            if not positional:
                _fail("give a NOTEBOOK (or --rerun RUN_ID)")
            notebook, pairs = positional[0], _pairs(parameter, positional[1:])
            plan_run(notebook, pairs)  # bad input: fail before opening anything
            r = run_notebook(notebook, pairs, progress=not quiet, log_output=not quiet)
    except LyraError as exc:
        _fail(str(exc))
    _summary(r)
    cmp = r["comparison"]
    ok = r["status"] == "finished" and (not rerun or bool(cmp and cmp["results_match"]))
    if not ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- lyra runs
runs_app = typer.Typer(help="Notebook runs: list, show.", no_args_is_help=True)


@runs_app.command("list")
def runs_list(
    status: Annotated[str | None, typer.Option(
        help="queued, running, finished, failed, timeout or skipped.")] = None,
    notebook: Annotated[str | None, typer.Option(help="Notebook file name or path.")] = None,
    schedule: Annotated[str | None, typer.Option(help="Schedule name.")] = None,
    limit: Annotated[int, typer.Option(help="At most N runs, newest first.")] = 30,
) -> None:
    """Runs, newest first: status, duration, notebook, key results."""
    from lyra.ops.runs import list_runs

    if not 1 <= limit <= 100_000:
        _fail(f"--limit={limit}: out of range: must be >= 1 and <= 100000")
    try:
        _, engine = _engine()
        rows = list_runs(engine, status=status, notebook=notebook, schedule=schedule, limit=limit)
    except LyraError as exc:
        _fail(str(exc))
    t = Table(title="runs")
    for c in ("run", "notebook", "status", "started", "seconds", "schedule", "key results"):
        t.add_column(c)
    for r in rows:
        small = {k: v for k, v in r["key_results"].items() if not isinstance(v, (list, dict))}
        t.add_row(r["run_id"], Path(r["notebook"]).name, r["status"], _fmt_ts(r["started_ts"]),
                  "" if r["duration_s"] is None else f"{r['duration_s']:.1f}",
                  f"{r['schedule_name']}#{r['attempt']}" if r["schedule_name"] else "",
                  ", ".join(f"{k}={v}" for k, v in small.items())[:80])
    console.print(t)


@runs_app.command("show")
def runs_show(run_id: str,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """One run: parameters, status, error, fingerprint, versions, key results."""
    from lyra.ops.runs import get_run

    try:
        _, engine = _engine()
        r = get_run(engine, run_id)
    except LyraError as exc:
        _fail(str(exc))
    if r is None:
        _fail(f"no run {run_id!r} (see `lyra runs list`)")
    assert r is not None
    if as_json:
        console.print_json(json.dumps(r, default=str))
        return
    t = Table(title=f"run {run_id}", show_header=False)
    t.add_column("what")
    t.add_column("value", overflow="fold")
    for k in ("notebook", "status", "error", "error_cell", "output_dir", "fingerprint", "lyra_version",
              "git_commit", "env_hash", "rerun_of", "schedule_name", "attempt", "owner", "pid"):
        if r[k] not in (None, ""):
            t.add_row(k, str(r[k]))
    if r["status"] in ("finished", "failed", "timeout") and not r["data_covered"]:
        t.add_row("data", "the fingerprint covers NO data (the notebook recorded no reads)")
    if r["heartbeat_ts"]:
        t.add_row("heartbeat", _fmt_ts(r["heartbeat_ts"]))
    t.add_row("started", _fmt_ts(r["started_ts"]))
    t.add_row("ended", _fmt_ts(r["ended_ts"]))
    t.add_row("seconds", "" if r["duration_s"] is None else f"{r['duration_s']:.2f}")
    t.add_row("parameters", json.dumps(r["parameters"]))
    for k, v in r["key_results"].items():
        text = json.dumps(v, default=str)
        t.add_row(f"result {k}", text if len(text) < 200 else f"{text[:200]}… ({len(v)} items)")
    if r["comparison"]:
        t.add_row("comparison", json.dumps(r["comparison"]))
    console.print(t)


# ---------------------------------------------------------------------------- lyra schedule
schedule_app = typer.Typer(help="Scheduled notebook runs: add, list, remove, pause, resume, fire, run.",
                           no_args_is_help=True)


@schedule_app.command("add")
def schedule_add(
    args: Annotated[list[str], typer.Argument(metavar="NAME NOTEBOOK",
                                              help="Schedule name, notebook (then the -p VALUEs).")],
    cron: Annotated[str | None, typer.Option(help="Cron: 5 fields, or 6 with seconds last.")] = None,
    every: Annotated[float | None, typer.Option(help="Or: fire every N seconds.")] = None,
    parameter: ParamOpt = None,
    start: Annotated[str | None, typer.Option(help="No fire before this time (ISO, UTC).")] = None,
    missed: Annotated[str, typer.Option(help="Missed fires: skip (latest, if recent) or catchup.")] = "skip",
    timeout: Annotated[float | None, typer.Option(help="Kill a run after N s (status timeout).")] = None,
    retries: Annotated[int, typer.Option(help="Retry a failed or timed-out run N times.")] = 0,
    backoff: Annotated[float, typer.Option(help="Seconds before the first retry (doubles).")] = 30.0,
) -> None:
    """Add a schedule (validates the cron expression, notebook and parameters first)."""
    from lyra.ops.scheduler import add_schedule

    if len(args) < 2:
        _fail("give a NAME and a NOTEBOOK")
    name, notebook, pairs = args[0], args[1], _pairs(parameter, args[2:])
    _check_options(every=every, timeout=timeout, retries=retries, backoff=backoff)
    try:
        _, engine = _engine()
        s = add_schedule(engine, name, notebook, pairs, cron=cron, every_s=every, start=start,
                         missed=missed, timeout_s=timeout, retries=retries, backoff_s=backoff)
    except LyraError as exc:
        _fail(str(exc))
    console.print(f"schedule [bold]{name}[/] added; next fire {_fmt_ts(s['next_ts'])} UTC")


@schedule_app.command("list")
def schedule_list() -> None:
    """Schedules: timing, policies, next fire, last run."""
    from lyra.ops.scheduler import list_schedules

    try:
        _, engine = _engine()
        rows = list_schedules(engine)
    except LyraError as exc:
        _fail(str(exc))
    t = Table(title="schedules")
    for c in ("name", "when", "notebook", "next fire (UTC)", "state", "missed", "timeout", "retries",
              "last run"):
        t.add_column(c)
    for s in rows:
        t.add_row(s["name"], s["cron"] or f"every {s['every_s']:g} s", Path(s["notebook"]).name,
                  _fmt_ts(s["next_ts"]), "paused" if s["paused"] else "active", s["missed"],
                  "" if s["timeout_s"] is None else f"{s['timeout_s']:g} s",
                  f"{s['retries']} (backoff {s['backoff_s']:g} s)", s["last_run_id"])
    console.print(t)


def _set(name: str, action: str) -> None:
    from lyra.ops.scheduler import remove_schedule, set_paused

    try:
        _, engine = _engine()
        if action == "remove":
            remove_schedule(engine, name)
        else:
            set_paused(engine, name, action == "pause")
    except LyraError as exc:
        _fail(str(exc))
    console.print(f"schedule {name}: {action}d")


@schedule_app.command("remove")
def schedule_remove(name: str) -> None:
    """Delete a schedule (its runs stay in the registry)."""
    _set(name, "remove")


@schedule_app.command("pause")
def schedule_pause(name: str) -> None:
    """Stop firing a schedule until it is resumed."""
    _set(name, "pause")


@schedule_app.command("resume")
def schedule_resume(name: str) -> None:
    """Fire a paused schedule again (from its next fire after now)."""
    _set(name, "resume")


def _check_options(**values: float | None) -> None:
    """Every numeric option finite and in range, or exit 2 naming it (``--backoff=nan: ...``)."""
    from lyra.ops.scheduler import LIMITS, check_number

    for name, value in values.items():
        opt = name.replace("_", "-")
        if value is not None:
            try:
                check_number(f"--{opt}", value, *LIMITS[opt], integer=opt in ("retries", "max-concurrent"))
            except LyraError as exc:
                _fail(str(exc))


@schedule_app.command("fire")
def schedule_fire(
    name: str,
    queue: Annotated[bool, typer.Option("--queue", help="Only queue the run for the running daemons "
                                        "(default: run it here, now, and wait for it).")] = False,
) -> None:
    """Run a schedule now, outside its timing.

    Its timeout and retry policy apply (a retry is queued for the daemons). Exit code 0 if the
    run finished, 1 otherwise."""
    from lyra.ops.runs import get_run
    from lyra.ops.scheduler import Scheduler, fire_now

    try:
        settings, engine = _engine()
        settings.runs_dir.mkdir(parents=True, exist_ok=True)
        if queue:
            rid = fire_now(engine, name)
            console.print(f"schedule {name}: run {rid} queued; a `lyra schedule run` daemon starts it")
            return
        sch = Scheduler(engine, settings, max_concurrent=1)
        rid = fire_now(engine, name, owner=sch.owner, at_ms=sch.clock.now_ms(), heartbeat_s=sch.heartbeat_s)
        if not sch.start_queued(rid, expected_owner=sch.owner):
            _fail(f"schedule {name}: run {rid} could not be started (see `lyra runs show {rid}`)")
        err.print(f"schedule {name}: run {rid} started; waiting for it (Ctrl-C leaves it to the daemons)")
        while sch.children:
            sch.tick(launch_new=False)  # reaps it, enforces its timeout
            if sch.children:
                import time

                time.sleep(0.2)
        r = get_run(engine, rid)
    except LyraError as exc:
        _fail(str(exc))
    assert r is not None
    _summary(r)
    retry = [x for x in list_runs_of(engine, name)
             if x["fire_ts"] == r["fire_ts"] and x["status"] == "queued"]
    if retry:
        console.print(f"  retry {retry[0]['attempt'] - 1} queued for {_fmt_ts(retry[0]['started_ts'])} UTC "
                      "(a `lyra schedule run` daemon starts it)")
    if r["status"] != "finished":
        raise typer.Exit(1)


def list_runs_of(engine: Any, schedule: str) -> list[dict[str, Any]]:
    from lyra.ops.runs import list_runs

    return list_runs(engine, schedule=schedule, limit=50)


@schedule_app.command("run")
def schedule_run(
    max_concurrent: Annotated[int, typer.Option(help="At most N runs at once (this daemon).")] = 2,
    poll: Annotated[float, typer.Option(help="Seconds between checks of the schedules.")] = 1.0,
    grace: Annotated[float, typer.Option(help="skip policy: run a missed fire if at most N s late.")] = 60.0,
    heartbeat: Annotated[float, typer.Option(help="Seconds between a run's heartbeats; a run silent for "
                                             "2 of them (or whose worker is gone) is marked failed.")] = 10.0,
    duration: Annotated[float | None, typer.Option(help="Stop launching after N seconds (tests).")] = None,
) -> None:
    """The scheduler daemon: launch due runs until SIGTERM/Ctrl-C.

    Runs in the foreground; on SIGTERM/Ctrl-C it lets running ones end. Several daemons may
    share one database: each fire starts once, and any of them recovers the runs of one that
    died."""
    from lyra.ops.scheduler import Scheduler

    _check_options(max_concurrent=max_concurrent, poll=poll, grace=grace, heartbeat=heartbeat,
                   duration=duration)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)
    try:
        settings, engine = _engine()
        settings.runs_dir.mkdir(parents=True, exist_ok=True)
        from lyra.metrics.scheduler import scheduler_metrics

        sch = Scheduler(engine, settings, max_concurrent=max_concurrent, poll_s=poll, grace_s=grace,
                        heartbeat_s=heartbeat, metrics=scheduler_metrics)
        err.print(sch.describe(), soft_wrap=True, highlight=False, markup=False)
        sch.run(duration)
    except LyraError as exc:
        _fail(str(exc))


#: Everything above as one app: ``python -m lyra.ops.cli run|runs|schedule ...``.
ops_app = typer.Typer(help="Lyra notebook runs and schedules.", no_args_is_help=True,
                      pretty_exceptions_enable=False)
ops_app.command("run")(run_command)
ops_app.add_typer(runs_app, name="runs")
ops_app.add_typer(schedule_app, name="schedule")

if __name__ == "__main__":
    ops_app()
