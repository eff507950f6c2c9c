"""Links to a trace in the long-term backend: the template is checked at start, ids escaped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meshui.dashboard.trace_links import build_link, trace_link, validate_template

ROOT = Path(__file__).resolve().parents[2]
TRACE = "4BF92F3577B34DA6A3CE929D0E0E4736"  # upper case is read, and written lower case
GRAFANA = (
    "http://grafana:3000/explore?left=%7B%22datasource%22:%22tempo%22,%22queries%22:"
    '%5B%7B%22query%22:%22{trace_id}%22%7D%5D%7D'
)


def test_a_grafana_explore_template_gets_the_lower_case_trace_id() -> None:
    link = build_link(validate_template(GRAFANA), TRACE)
    assert link == GRAFANA.replace("{trace_id}", TRACE.lower())


def test_braces_of_raw_json_in_the_template_are_left_alone_and_every_placeholder_is_filled() -> None:
    template = 'https://g.example/explore?left={"queries":[{"query":"{trace_id}"}]}&also={trace_id}'
    link = build_link(validate_template(template), TRACE)
    assert link == template.replace("{trace_id}", TRACE.lower())


@pytest.mark.parametrize(
    "trace_id",
    [
        "",
        "0" * 32,  # the invalid all-zero id
        "4bf92f3577b34da6a3ce929d0e0e473",  # 31 digits
        "4bf92f3577b34da6a3ce929d0e0e47360",  # 33
        "zzf92f3577b34da6a3ce929d0e0e4736",
        "4bf92f3577b34da6/../../admin/e4736",
    ],
)
def test_an_id_that_is_not_a_trace_id_gets_no_link(trace_id: str) -> None:
    assert build_link("http://jaeger:16686/trace/{trace_id}", trace_id) is None


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("http://jaeger:16686/trace/", "must contain {trace_id}"),
        ("javascript:alert(1)//{trace_id}", "http:// or https://"),
        ("jaeger:16686/trace/{trace_id}", "http:// or https://"),
        ("http:///trace/{trace_id}", "http:// or https://"),
        ("http://jaeger:16686/trace/{trace_id}\n", "spaces or control characters"),
        ("http://jaeger 16686/trace/{trace_id}", "spaces or control characters"),
    ],
)
def test_a_bad_template_is_refused_saying_why(template: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        validate_template(template)


def test_trace_link_reads_the_setting(settings: Any) -> None:
    settings.MESHUI_TRACE_LINK_TEMPLATE = ""
    assert trace_link(TRACE) is None  # not configured: no link
    settings.MESHUI_TRACE_LINK_TEMPLATE = "http://jaeger:16686/trace/{trace_id}"
    assert trace_link(TRACE) == f"http://jaeger:16686/trace/{TRACE.lower()}"


def start_django(template: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "meshui.settings", "MESHUI_TRACE_LINK_TEMPLATE": template}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_a_bad_template_stops_the_start_naming_the_variable() -> None:
    result = start_django("http://grafana:3000/explore")
    assert result.returncode != 0
    assert "MESHUI_TRACE_LINK_TEMPLATE must contain {trace_id}" in result.stderr
    assert start_django("http://jaeger:16686/trace/{trace_id}").returncode == 0
