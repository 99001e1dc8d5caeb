"""lyra.core imports nothing from the rest of Lyra (dependencies point inward)."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.subprocess  # a fresh interpreter shows what an import loads


def test_core_imports_only_itself():
    code = "import sys, json, lyra.core; print(json.dumps(sorted(m for m in sys.modules if m.startswith('lyra'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    mods = json.loads(out)
    outside = [m for m in mods if m != "lyra" and not m.startswith("lyra.core")]
    assert "lyra.core.orders" in mods
    assert outside == []


def test_core_does_not_import_heavy_adapters():
    code = "import sys, lyra.core; print(','.join(m for m in ('sqlalchemy','pandas','ccxt','panel') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
