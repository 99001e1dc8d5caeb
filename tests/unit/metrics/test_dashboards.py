"""Grafana dashboards as code: the committed JSON is what deploy/grafana/build_dashboards.py
builds (no hand edits), each dashboard has its stable uid, and every panel's query names
metrics Lyra exports, on the provisioned datasource."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from lyra.metrics.catalogue import exported_sample_names

from .promql import STANDARD, metric_names

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"
UIDS = {"lyra-trading.json": "lyra-trading", "lyra-risk.json": "lyra-risk", "lyra-operations.json": "lyra-operations"}


def builder():
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def committed() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def test_committed_json_is_what_the_code_builds():
    mod = builder()
    assert set(committed()) == set(UIDS)
    for name in UIDS:
        assert (GRAFANA / "dashboards" / name).read_text() == mod.render(name.removesuffix(".json")), \
            f"{name} is stale: run deploy/grafana/build_dashboards.py"


@pytest.mark.parametrize("name", sorted(UIDS))
def test_stable_uid_and_panels_on_exported_metrics(name):
    d = committed()[name]
    assert d["uid"] == UIDS[name]
    ds_uid = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "lyra.yml").read_text()
                            )["datasources"][0]["uid"]
    panels = [p for p in d["panels"] if p["type"] != "row"]
    assert len(panels) >= 8
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) and 0 not in ids
    exported = exported_sample_names() | STANDARD
    for p in panels:
        assert p["datasource"]["uid"] == ds_uid, p["title"]
        assert p["targets"], f"{p['title']} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert all(refs) and len(refs) == len(set(refs))
        for t in p["targets"]:
            names = metric_names(t["expr"])
            assert any(n.startswith("lyra_") for n in names) or names <= STANDARD, (p["title"], t["expr"])
            assert names <= exported, f"{name} / {p['title']}: unknown metrics {sorted(names - exported)}"
    for v in d.get("templating", {}).get("list", []):
        assert metric_names(v["query"].replace("label_values(", "").split(",")[0]) <= exported


def test_provisioning_loads_the_dashboard_folder():
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "lyra.yml").read_text())
    assert prov["apiVersion"] == 1 and prov["providers"][0]["type"] == "file"
