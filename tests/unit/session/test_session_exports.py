"""The public surface of lyra.session is pinned (a rename is a choice), every name resolves
and is documented, and importing the package loads none of the session's machinery."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import lyra.session

PUBLIC = [
    "InstrumentSpec",
    "LeaseHeld",
    "LeaseLost",
    "LiveSession",
    "ParityReport",
    "Session",
    "SessionConfig",
    "SessionRegistry",
    "SessionResult",
    "build_strategy",
    "load_session_config",
    "open_live_session",
    "open_session",
    "parity_report",
    "strategy_class",
]


def test_all_is_pinned() -> None:
    assert lyra.session.__all__ == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_each_name_resolves_and_is_documented(name: str) -> None:
    obj = getattr(lyra.session, name)
    assert obj.__module__.startswith("lyra."), obj.__module__
    assert f"``{name}``" in (lyra.session.__doc__ or ""), f"{name} is not in lyra.session's docstring"
    assert (vars(obj).get("__doc__") if isinstance(obj, type) else obj.__doc__), f"{name} has no docstring"


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = lyra.session.nope
    assert set(PUBLIC) <= set(dir(lyra.session))


@pytest.mark.subprocess
def test_importing_the_package_loads_no_session_machinery() -> None:
    code = ("import json, sys\nimport lyra.session\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('lyra.session.') "
            "or m.split('.')[0] in ('sqlalchemy', 'pandas', 'vectorbt'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == []
