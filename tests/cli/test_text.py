"""meshctl's pure parts: terminal-safe text, tables, diffs, documents, weights, stat rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from meshui.cli import stat
from meshui.cli.documents import parse_document, parse_split
from meshui.cli.errors import CliError
from meshui.cli.terminal import age, as_json, as_yaml, clean, diff_text, table


def test_clean_escapes_every_control_and_bidi_character_and_keeps_the_rest() -> None:
    assert clean("catalog-v2 ünïcode") == "catalog-v2 ünïcode"
    assert clean("a\x1b[2Jb\x07\r\x9b\x7f\u202e") == "a\\x1b[2Jb\\x07\\x0d\\x9b\\x7f\\u202e"
    assert clean("one\ntwo\tthree", keep="\n") == "one\ntwo\\x09three"


def test_a_table_pads_columns_to_the_widest_cell_and_cleans_cells() -> None:
    assert table(["NAME", "RPS"], [["catalog", "1.0"], ["a\x1b", "12.5"]]) == (
        "NAME      RPS\n"
        "catalog   1.0\n"
        "a\\x1b     12.5\n")


def test_a_diff_is_coloured_only_when_asked_and_always_cleaned() -> None:
    unified = "--- a\n+++ b\n@@ -1 +1 @@\n-v1: 80\n+v1: 50\x1b[31m\n"
    plain = diff_text(unified, colour=False)
    assert "\x1b" not in plain and "+v1: 50\\x1b[31m" in plain
    coloured = diff_text(unified, colour=True).splitlines()
    assert coloured[3] == "\x1b[31m-v1: 80\x1b[0m"
    assert coloured[4] == "\x1b[32m+v1: 50\\x1b[31m\x1b[0m"
    assert coloured[2].startswith("\x1b[36m@@")


def test_age_counts_down_to_the_largest_unit() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert age("2026-12-01T11:59:18Z", now) == "42s"
    assert age("2026-12-01T09:00:00.5Z", now) == "2h"
    assert age("2026-11-20T12:00:00Z", now) == "11d"
    assert (age(None, now), age("yesterday", now)) == ("-", "?")


def test_json_and_yaml_for_a_terminal_escape_what_could_drive_it() -> None:
    text = as_json({"name": "x\x1b\x9b\u202e", "ok": "é"})
    assert json.loads(text) == {"name": "x\x1b\x9b\u202e", "ok": "é"}
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text and "é" in text
    yaml_text = as_yaml({"services": {"x\r": {"split": {"v1\x85": 100}}}})
    assert all(ord(c) < 0x7f and (c.isprintable() or c == "\n") for c in yaml_text)


def test_a_document_keeps_dates_as_strings_and_unwraps_an_exported_revision() -> None:
    assert parse_document("services: {x: {note: 2026-01-01}}", "f") == {
        "services": {"x": {"note": "2026-01-01"}}}
    exported = {"revision": 3, "document": {"services": {}}, "author": "o", "message": "",
                "source": "cli", "created_at": None, "parent": 2}
    assert parse_document(json.dumps(exported), "f") == {"services": {}}
    # A document that merely has a "document" key is not mistaken for a revision.
    assert parse_document('{"revision": 1, "document": {}, "extra": 1}', "f")["extra"] == 1
    assert parse_document("", "f") == {}
    with pytest.raises(CliError, match="not valid YAML or JSON at line 1"):
        parse_document("{", "f")


def test_split_weights_are_integers_or_finite_decimals() -> None:
    assert parse_split(["v1=80", "v2=20"]) == {"v1": 80, "v2": 20}
    assert parse_split(["v1 = 12.5", "v2=87.5"]) == {"v1": 12.5, "v2": 87.5}
    for bad in (["v1=inf"], ["=80"], ["v1=1e999"], ["v1="]):
        with pytest.raises(CliError) as raised:
            parse_split(bad)
        assert raised.value.code == 2


def test_stat_gives_each_version_of_an_edge_its_share() -> None:
    edge = {"source": "frontend", "target": "catalog", "requests": 100, "errors": 1, "rps": 1.0,
            "p50_ms": 9.0, "p95_ms": 20.0, "p99_ms": 31.4,
            "by_version": {"v2": {"requests": 20, "errors": 1, "rps": 0.2, "share": 0.2,
                                  "p50_ms": 12.0, "p95_ms": 22.0, "p99_ms": 40.0},
                           "v1": {"requests": 80, "errors": 0, "rps": 0.8, "share": 0.8,
                                  "p50_ms": 8.0, "p95_ms": 19.0, "p99_ms": 30.0}}}
    headers, rows = stat.edge_rows([edge], "target")
    assert headers == ["TO", "VERSION", "SHARE", "SUCCESS", "RPS", "P50", "P95", "P99"]
    assert rows == [
        ["catalog", "*", "", "99.00%", "1.0", "9.0ms", "20ms", "31ms"],
        ["catalog", "v1", "80.0%", "100.00%", "0.8", "8.0ms", "19ms", "30ms"],
        ["catalog", "v2", "20.0%", "95.00%", "0.2", "12ms", "22ms", "40ms"]]
    plain = {k: v for k, v in edge.items() if k != "by_version"}
    assert stat.edge_rows([plain], "source") == (
        ["FROM", "SUCCESS", "RPS", "P50", "P95", "P99"],
        [["frontend", "99.00%", "1.0", "9.0ms", "20ms", "31ms"]])
    assert stat.shares({"v1": {"share": 0.25}}) == {"v1": 25.0}
    assert stat.stats({"requests": 0, "errors": 0, "rps": 0.0, "p50_ms": None}) == [
        "-", "0.0", "-", "-", "-"]
