"""Operations: papermill runs of parameterised notebooks (the run registry), their schedules
and the scheduler daemon, data fingerprints for reproducibility.

A run starts a Jupyter kernel, so this is not run as a doctest (the tests run it)::

    from lyra.ops import run_notebook, rerun, list_runs

    run = run_notebook("notebooks/paper_session.ipynb", {"end": "2017-09-01"})
    rerun(run["run_id"])["comparison"]["results_match"]   # True: same data, same results
"""

from lyra.ops.context import (
    DataFile,
    DataRange,
    current_run_dir,
    current_run_id,
    record_files,
    record_reads,
    record_results,
    session_reads,
)
from lyra.ops.fingerprint import fingerprint
from lyra.ops.runs import (
    RunPlan,
    compare_runs,
    execute_registered,
    get_run,
    list_runs,
    notebook_parameters,
    plan_run,
    register_run,
    rerun,
    run_notebook,
)
from lyra.ops.scheduler import (
    Scheduler,
    add_schedule,
    check_cron,
    claim_fire,
    due_fires,
    fire_now,
    get_schedule,
    list_schedules,
    remove_schedule,
    set_paused,
)

__all__ = [
    "DataFile",
    "DataRange",
    "RunPlan",
    "Scheduler",
    "add_schedule",
    "check_cron",
    "claim_fire",
    "compare_runs",
    "current_run_dir",
    "current_run_id",
    "due_fires",
    "execute_registered",
    "fingerprint",
    "fire_now",
    "get_run",
    "get_schedule",
    "list_runs",
    "list_schedules",
    "notebook_parameters",
    "plan_run",
    "record_files",
    "record_reads",
    "record_results",
    "register_run",
    "remove_schedule",
    "rerun",
    "run_notebook",
    "session_reads",
    "set_paused",
]
