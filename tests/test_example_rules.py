"""The example rules over the sample lines give exactly what expected.yaml says."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tailhook.config import load_config
from tailhook.events import Line
from tailhook.rules import RuleSet

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "sample-logs"


def test_sample_lines_match_as_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAILHOOK_LOG_DIR", raising=False)
    expected = yaml.safe_load((SAMPLES / "expected.yaml").read_text(encoding="utf-8"))
    rules = RuleSet(load_config(ROOT / "config.example.yaml").rules, host="test-host")

    found = []
    for name, source in expected["sources"].items():
        for number, text in enumerate((SAMPLES / name).read_text(encoding="utf-8").splitlines(), 1):
            found += [
                {"file": name, "line": number, "rule": e.rule, "captures": dict(e.captures), "title": e.title}
                for e in rules.match(Line(text=text, source=source, time=0.0))
            ]

    assert found == expected["matches"]
