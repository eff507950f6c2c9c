"""meshctl's policy commands against a real meshui: get, apply, split, validate, diff,
history, rollback, with the refusals a person meets (invalid policy, a lost race, a role)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshui.accounts.roles import Role
from meshui.cli import policy_commands
from meshui.policy.models import Revision
from tests.cli.conftest import Meshctl, live_instance, token_for, write_file

CANARY_YAML = """\
services:
  catalog:
    split: {v1: 80, v2: 20}
"""
CANARY = {"services": {"catalog": {"split": {"v1": 80, "v2": 20}}}}
EVEN = {"services": {"catalog": {"split": {"v1": 50, "v2": 50}}}}


@pytest.fixture
def catalog() -> None:
    live_instance("catalog", "v1", "catalog-v1-0", config_acked=0)
    live_instance("catalog", "v2", "catalog-v2-0", config_acked=0)


def test_get_policy_before_any_revision_says_the_defaults_apply(meshctl: Meshctl) -> None:
    result = meshctl("get", "policy")
    assert result.code == 0, result.err
    assert result.out == "# revision 0: no revision yet, the built-in defaults apply\n{}\n"
    assert meshctl("get", "policy", "-o", "json").json() == meshctl.api("/policy")


def test_apply_writes_a_yaml_file_as_a_cli_revision_on_the_current_one(
    meshctl: Meshctl, tmp_path: Path, catalog: None
) -> None:
    path = write_file(tmp_path, "canary.yaml", CANARY_YAML)
    result = meshctl("apply", "-f", path, "-m", "canary 20%")
    assert (result.code, result.out, result.err) == (0, "revision 1 created\n", "")
    current = meshctl("get", "policy", "-o", "json").json()
    assert (current["revision"], current["document"]) == (1, CANARY)
    assert (current["author"], current["source"], current["message"]) == (
        "olivia", "cli", "canary 20%")

    shown = meshctl("get", "policy")
    assert shown.out.startswith("# revision 1 by olivia (cli), ")
    assert shown.out.splitlines()[0].endswith(" ago: canary 20%")
    # What `get policy` prints applies again as it is (a YAML comment, then the document).
    again = meshctl("apply", "-f", write_file(tmp_path, "again.yaml", shown.out))
    assert again.out == "revision 2 created\n"
    assert Revision.objects.get(number=2).parent == 1


def test_apply_reads_json_from_stdin_and_takes_an_exported_revision(
    meshctl: Meshctl, catalog: None
) -> None:
    assert meshctl("apply", "-f", "-", stdin=json.dumps(CANARY)).code == 0
    exported = meshctl("get", "policy", "-o", "json").out
    result = meshctl("apply", "-f", "-", "-o", "json", stdin=exported)
    assert result.code == 0, result.err
    created = result.json()
    assert (created["revision"], created["parent"], created["document"]) == (2, 1, CANARY)
    assert created["warnings"] == []


def test_apply_prints_the_warnings_of_a_document_it_writes(meshctl: Meshctl, catalog: None
                                                            ) -> None:
    result = meshctl("apply", "-f", "-", stdin="services:\n  ghost: {}\n")
    assert result.code == 0 and result.out == "revision 1 created\n"
    assert result.err.startswith("meshctl: warning: services.ghost: ")


@pytest.mark.parametrize("content, said", [
    ("services: [unclosed\n", "is not valid YAML or JSON at line 2"),
    ("- a\n- list\n", "must hold a policy document"),
    ("base: &b {a: 1}\nservices: {x: *b}\n", "aliases (*name) are not allowed"),
])
def test_an_unreadable_file_is_a_usage_error_before_any_write(
    meshctl: Meshctl, tmp_path: Path, content: str, said: str
) -> None:
    result = meshctl("apply", "-f", write_file(tmp_path, "bad.yaml", content))
    assert result.code == 2 and said in result.err
    assert result.err.count("\n") == 1 and result.err.startswith("meshctl: ")
    missing = meshctl("apply", "-f", str(tmp_path / "nope.yaml"))
    assert missing.code == 2 and "nope.yaml: no such file" in missing.err
    assert not Revision.objects.exists()


def test_an_invalid_policy_is_refused_naming_the_field(meshctl: Meshctl, tmp_path: Path) -> None:
    path = write_file(tmp_path, "bad.yaml", "services:\n  catalog:\n    retries: {atempts: 3}\n")
    result = meshctl("apply", "-f", path)
    assert result.code == 1 and result.out == ""
    assert result.err == (f"meshctl: {path}: services.catalog.retries.atempts: unknown key "
                          f"(did you mean 'attempts'?); nothing was written\n")
    assert not Revision.objects.exists()


def test_a_write_racing_another_is_refused_with_who_won_and_a_hint_to_re_run(
    meshctl: Meshctl, monkeypatch: pytest.MonkeyPatch, catalog: None
) -> None:
    assert meshctl("apply", "-f", "-", stdin=json.dumps(CANARY)).code == 0
    real = policy_commands.current_revision

    def read_then_lose_the_race(ctx: Any) -> int:
        seen = real(ctx)
        other = httpx.post(f"{meshctl.url}/api/v1/policy/revisions",  # someone else writes
                           json={"document": EVEN, "parent": seen},
                           headers={"Authorization": f"Bearer {meshctl.token}"})
        assert other.status_code == 201, other.text
        return seen

    monkeypatch.setattr(policy_commands, "current_revision", read_then_lose_the_race)
    result = meshctl("apply", "-f", "-", stdin="{}")
    assert result.code == 1
    assert result.err == ("meshctl: someone else wrote revision 2 (olivia) meanwhile; nothing "
                          "was written: re-run to apply on top of it (meshctl diff 2 shows "
                          "their change)\n")
    assert Revision.objects.count() == 2


def test_a_viewer_is_refused_a_write_with_the_role_it_needs(server: str, meshctl: Meshctl) -> None:
    result = meshctl("apply", "-f", "-", stdin="{}", MESHUI_TOKEN=token_for("vic", Role.VIEWER))
    assert result.code == 1 and "needs the operator role" in result.err
    assert not Revision.objects.exists()


def test_split_patches_one_service_s_split_on_the_current_revision(
    meshctl: Meshctl, catalog: None
) -> None:
    assert meshctl("apply", "-f", "-", stdin=json.dumps(
        {"services": {"catalog": {"split": {"v1": 100}, "load_balancer": "least_request"}}})).code == 0
    result = meshctl("split", "catalog", "v1=80", "v2=20")
    assert (result.code, result.out) == (0, "revision 2 created\n")
    revision = Revision.objects.get(number=2)
    assert revision.document == {"services": {"catalog": {
        "split": {"v1": 80, "v2": 20}, "load_balancer": "least_request"}}}
    assert (revision.source, revision.message) == ("cli", "split catalog v1=80 v2=20")
    assert meshctl("split", "catalog", "v1=55.5", "v2=44.5", "-m", "x").code == 0
    assert Revision.objects.get(number=3).document["services"]["catalog"]["split"] == {
        "v1": 55.5, "v2": 44.5}


@pytest.mark.parametrize("weights, said", [
    (["v1=eighty", "v2=20"], "'v1=eighty': the weight of v1 must be a number"),
    (["v1", "v2=20"], "give each weight as VERSION=PERCENT"),
    (["v1=50", "v1=50"], "v1 is given twice"),
    (["v1=nan", "v2=20"], "the weight of v1 must be a number"),
])
def test_split_weights_that_are_not_numbers_are_refused_before_any_request(
    meshctl: Meshctl, weights: list[str], said: str
) -> None:
    # Nothing listens at this URL: a request would be exit 3, not the usage error.
    result = meshctl("split", "catalog", *weights, MESHUI_URL="http://127.0.0.1:9")
    assert result.code == 2 and said in result.err and result.err.count("\n") == 1


def test_validate_prints_errors_warnings_and_the_diff_and_exits_1_when_invalid(
    meshctl: Meshctl, tmp_path: Path, catalog: None
) -> None:
    good = write_file(tmp_path, "good.yaml", CANARY_YAML + "  ghost: {}\n")
    result = meshctl("validate", "-f", good)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("warning: services.ghost: ")
    assert "--- defaults" in lines and "+++ proposed" in lines and "+services:" in lines
    assert lines[-1] == f"{good} is valid"
    assert "\x1b" not in result.out  # not a terminal: no colour

    bad = write_file(tmp_path, "bad.yaml", "default: {x: 1}\n")
    refused = meshctl("validate", "-f", bad)
    assert refused.code == 1
    assert refused.out.splitlines()[0].startswith("error: default.x: ")
    assert refused.err == f"meshctl: {bad} is invalid (1 error): fix default.x and validate again\n"
    as_json = meshctl("validate", "-f", bad, "-o", "json")
    assert as_json.code == 1 and as_json.json()["errors"][0]["field"] == "default.x"
    assert not Revision.objects.exists()


def test_diff_reads_like_git_diff(meshctl: Meshctl, catalog: None) -> None:
    assert meshctl("diff").out == "no revision yet: the built-in defaults apply\n"
    meshctl("apply", "-f", "-", stdin=json.dumps(CANARY))
    meshctl("split", "catalog", "v1=50", "v2=50")
    latest = meshctl("diff")  # the current revision against its parent
    assert latest.code == 0
    assert "--- revision 1\n+++ revision 2\n" in latest.out
    assert "-      v1: 80\n-      v2: 20\n+      v1: 50\n+      v2: 50\n" in latest.out
    assert meshctl("diff", "2").out == latest.out
    first = meshctl("diff", "1")
    assert "+services:" in first.out  # from the defaults
    backwards = meshctl("diff", "2", "1")  # from 2 to 1
    assert "-      v1: 50\n-      v2: 50\n+      v1: 80\n+      v2: 20\n" in backwards.out
    assert meshctl("diff", "1", "1").out == "no changes\n"
    changes = meshctl("diff", "1", "2", "-o", "json").json()["changes"]
    assert changes == [
        {"field": "services.catalog.split.v1", "op": "changed", "old": 80, "new": 50},
        {"field": "services.catalog.split.v2", "op": "changed", "old": 20, "new": 50}]
    missing = meshctl("diff", "7")
    assert (missing.code, missing.err) == (1, "meshctl: there is no revision 7\n")
    assert meshctl("diff", "1", "2", "3").code == 2


def test_history_lists_revisions_newest_first(meshctl: Meshctl, catalog: None) -> None:
    assert meshctl("history").out == "no revision yet: the built-in defaults apply\n"
    meshctl("apply", "-f", "-", "-m", "canary\nsecond line", stdin=json.dumps(CANARY))
    meshctl("split", "catalog", "v1=50", "v2=50")
    result = meshctl("history")
    header, newest, oldest = result.out.splitlines()
    assert header.split() == ["REVISION", "AUTHOR", "SOURCE", "AGE", "MESSAGE"]
    assert newest.split()[:3] == ["2", "olivia", "cli"]
    assert newest.split()[4:] == ["split", "catalog", "v1=50", "v2=50"]
    assert oldest.split()[0] == "1" and oldest.split()[3].endswith("s")
    assert oldest.endswith("   canary")  # the first line of the message
    assert header.index("MESSAGE") == newest.index("split")  # aligned columns
    limited = meshctl("history", "--limit", "1", "-o", "json").json()
    assert limited["count"] == 2
    assert [r["revision"] for r in limited["revisions"]] == [2]
    assert limited["revisions"][0] == meshctl.api("/policy/revisions")["revisions"][0]


def test_rollback_writes_an_earlier_document_again(meshctl: Meshctl, catalog: None) -> None:
    meshctl("apply", "-f", "-", stdin=json.dumps(CANARY))
    meshctl("apply", "-f", "-", stdin=json.dumps(EVEN))
    result = meshctl("rollback", "1")
    assert (result.code, result.out) == (0, "revision 3 created\n")
    rolled = meshctl("get", "policy", "-o", "json").json()
    assert (rolled["document"], rolled["source"], rolled["message"]) == (
        CANARY, "rollback", "roll back to revision 1")
    assert meshctl("rollback", "2", "-m", "even again", "-o", "json").json()["message"] == (
        "even again")
    missing = meshctl("rollback", "99")
    assert (missing.code, missing.err) == (1, "meshctl: there is no revision 99\n")
    assert meshctl("rollback", "0").code == 2
