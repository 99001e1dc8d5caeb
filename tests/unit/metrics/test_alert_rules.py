"""The shipped alert rules: valid for promtool, unit-tested by promtool (every alert fires on
the series that should trip it and stays quiet beside it), and reading only metrics Lyra exports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lyra.metrics.catalogue import exported_sample_names

from .promql import STANDARD, metric_names

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"
RULES = DEPLOY / "lyra-alerts.yml"
TESTS = DEPLOY / "lyra-alerts.test.yml"


def promtool() -> str:
    found = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(found).is_file(), "promtool is missing: run scripts/setup.sh (Debian's prometheus package)"
    return found


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


@pytest.mark.subprocess
def test_promtool_checks_the_rules_and_the_config():
    out = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules())} rules found" in out.stdout
    cfg = subprocess.run([promtool(), "check", "config", str(DEPLOY / "prometheus.yml")], capture_output=True,
                         text=True, timeout=120)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr


@pytest.mark.subprocess
def test_promtool_rule_unit_tests_pass():
    out = subprocess.run([promtool(), "test", "rules", TESTS.name], cwd=DEPLOY, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_is_unit_tested():
    tested = {t["alertname"] for case in yaml.safe_load(TESTS.read_text())["tests"]
              for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert {r["alert"] for r in rules()} == tested


def test_the_issue_s_alerts_are_all_there():
    names = {r["alert"] for r in rules()}
    assert {"LyraSessionStale", "LyraFeedStale", "LyraUnknownOrders", "LyraKillSwitchEngaged", "LyraBreakerTripped",
            "LyraRejectSpike", "LyraDrawdownNearLimit", "LyraReconciliationMismatch", "LyraAuditVerifyFailed",
            "LyraBackupTooOld", "LyraSchedulerMissedRun", "LyraTargetDown"} <= names


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_rules_read_only_exported_metrics(rule):
    names = metric_names(rule["expr"])
    assert names, rule["expr"]
    unknown = names - exported_sample_names() - STANDARD
    assert not unknown, f"{rule['alert']} reads metrics Lyra does not export: {sorted(unknown)}"
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_metric_name_reader_itself():
    assert metric_names('sum by (session_id) (rate(lyra_fills_total{session_id=~"$session"}[$__rate_interval]))') \
        == {"lyra_fills_total"}
    assert metric_names('(time() - lyra_x_seconds > 300) and on (session_id) (lyra_session_info{mode="live"} == 1)') \
        == {"lyra_x_seconds", "lyra_session_info"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(lyra_a_bucket[5m])))") == {"lyra_a_bucket"}
    # A typo in a rule would be caught: the name is not in the catalogue.
    assert metric_names("lyra_orders_submited_total > 0") - exported_sample_names() == {"lyra_orders_submited_total"}
