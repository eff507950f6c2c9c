"""meshctl's alert commands against a real meshui: rules made with flags and files, their
states from the real evaluator over traffic in the suite's embedded Valkey, the history and
the preview, and the refusals a person meets (a rule the server refuses, a role, a name)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from meshui.accounts.roles import Role
from meshui.alerts.evaluator import Evaluator
from meshui.alerts.models import AlertRule, ContactPoint
from tests.cli.conftest import Meshctl, token_for, write_file
from tests.clock import FakeClock
from tests.meshui.alerts.traffic import Traffic
from tests.meshui.conftest import redis_client  # noqa: F401  (a fixture)

HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\r\u202e"
PAYMENTS = ["payments errors", "--edge", "checkout,payments", "--metric", "error_rate",
            "--window", "60", "--op", ">", "--fire", "0.2", "--recover", "0.05",
            "--severity", "critical", "--label", "team=payments"]
RULE = {"name": "payments errors", "target": {"source": "checkout", "target": "payments"},
        "metric": "error_rate", "window_s": 60, "op": ">", "fire": 0.2, "recover": 0.05,
        "for_s": 10, "keep_firing_s": 0, "severity": "critical", "labels": {"team": "payments"},
        "contact_points": []}
DEAD = "http://127.0.0.1:9"  # nothing listens: a request would be exit 3, not a usage error


def cells(line: str) -> list[str]:
    """A table row's cells (columns are three spaces apart at least)."""
    return re.split(r" {3,}", line.rstrip())


def created(meshctl: Meshctl, *argv: str) -> dict[str, Any]:
    result = meshctl("alert", "create", *argv, "-o", "json")
    assert result.code == 0, result.err
    return result.json()  # type: ignore[no-any-return]


def evaluate(client: redis.Redis, at: int) -> None:
    """One real evaluation cycle at ``at`` (epoch seconds)."""
    assert Evaluator(client, clock=FakeClock(at + 1.0), interval=10).run().ran


def payments_failing(client: redis.Redis, at: int) -> None:
    """The minute before ``at``: checkout -> payments fails half its calls, frontend -> catalog
    none."""
    traffic = Traffic(client)
    traffic.calls("checkout", "payments", range(at - 60, at), 10, 0.5)
    traffic.calls("frontend", "catalog", range(at - 60, at), 4, 0.0, latency_ms=180.0)
    traffic.write()


def test_alert_create_with_flags_makes_the_api_s_rule_and_prints_it(meshctl: Meshctl) -> None:
    point = ContactPoint.objects.create(name="on-call", kind="webhook")
    result = meshctl("alert", "create", *PAYMENTS, "--for", "10s", "--contact-point",
                     str(point.pk))
    assert result.code == 0, result.err
    rule = AlertRule.objects.get()
    assert result.out == (f"rule {rule.pk} 'payments errors' created: error_rate of checkout -> "
                          f"payments > 20% over 1m (recovers < 5%) for 10s, critical\n")
    shown = meshctl.api(f"/alerts/rules/{rule.pk}")
    assert {key: shown[key] for key in RULE} == RULE | {"contact_points": [point.pk]}

    as_json = created(meshctl, "latency", "--service", "catalog", "--version", "v2", "--metric",
                      "p95_ms", "--window", "5m", "--op", ">", "--fire", "250")
    assert as_json == meshctl.api(f"/alerts/rules/{as_json['id']}")
    assert (as_json["target"], as_json["window_s"], as_json["recover"], as_json["severity"]) == (
        {"service": "catalog", "version": "v2"}, 300, 250.0, "warning")
    percent = created(meshctl, "by percent", "--edge", "*,payments", "--version", "v1",
                      "--metric", "error_rate", "--window", "1m", "--op", ">", "--fire", "20%")
    assert (percent["target"], percent["fire"]) == (
        {"source": "*", "target": "payments", "version": "v1"}, 0.2)
    instance = created(meshctl, "quiet", "--instance", "payments-v1-0", "--service", "payments",
                       "--metric", "no_data", "--window", "30")
    assert (instance["target"], instance["op"], instance["fire"]) == (
        {"service": "payments", "instance": "payments-v1-0"}, ">", 0.5)


@pytest.mark.parametrize("argv, said", [
    (["x", "--service", "a", "--window", "60"], "a new rule needs --metric"),
    (["--service", "a", "--metric", "rps", "--window", "60"], "a new rule needs NAME"),
    (["x", "--metric", "rps", "--window", "60"], "needs a target (--service, --edge or "),
    (["x", "--edge", "checkout", "--metric", "rps", "--window", "60"], "give the caller and "),
    (["x", "--edge", "a,b", "--service", "a", "--metric", "rps"], "--edge is a target of its own"),
    (["x", "--version", "v1", "--metric", "rps", "--window", "60"], "--version needs --service"),
    (["x", "--service", "a", "--metric", "latency"], "argument --metric: invalid choice"),
    (["x", "--service", "a", "--metric", "rps", "--window", "soon"], "is not a duration"),
    (["x", "--service", "a", "--metric", "rps", "--fire", "lots"], "is not a number"),
    (["x", "--service", "a", "--metric", "rps", "--window", "60", "--label", "team"],
     "--label 'team': give NAME=VALUE"),
    (["x", "-f", "rule.yaml", "--fire", "0.3"], "with -f FILE or with flags, not both"),
])
def test_a_rule_the_flags_cannot_make_is_a_usage_error_before_any_request(
    meshctl: Meshctl, argv: list[str], said: str
) -> None:
    result = meshctl("alert", "create", *argv, MESHUI_URL=DEAD)
    assert result.code == 2, result.err
    assert said in result.err and result.err.count("\n") == 1


def test_a_rule_the_server_refuses_names_the_flag_and_saves_nothing(
    meshctl: Meshctl, tmp_path: Path
) -> None:
    result = meshctl("alert", "create", *PAYMENTS[:-6], "--recover", "0.3")
    assert (result.code, result.out) == (1, "")
    assert result.err == ("meshctl: --recover: recover (0.3) must be at most fire (0.2) when op "
                          "is '>': the alert recovers once below it; nothing was saved\n")
    too_big = meshctl("alert", "create", "x", "--service", "a", "--metric", "error_rate",
                      "--window", "60", "--op", ">", "--fire", "5")
    assert too_big.err == ("meshctl: --fire: fire of error_rate must be 0..1 (a ratio: 0.05 is "
                           "5 %), got 5; nothing was saved\n")
    short = meshctl("alert", "create", "x", "--service", "a", "--metric", "rps", "--window", "5",
                    "--op", ">", "--fire", "1")
    assert short.code == 1 and short.err.startswith("meshctl: --window: ")
    reserved = meshctl("alert", "create", *PAYMENTS, "--label", "severity=high")
    assert reserved.code == 1 and reserved.err.startswith("meshctl: --label severity: ")
    assert not AlertRule.objects.exists()

    assert meshctl("alert", "create", *PAYMENTS).code == 0
    again = meshctl("alert", "create", *PAYMENTS)
    assert again.err == (f"meshctl: NAME: a rule named 'payments errors' exists already (id "
                         f"{AlertRule.objects.get().pk}); nothing was saved\n")
    path = write_file(tmp_path, "bad.yaml", yaml.safe_dump(RULE | {"name": "b", "op": "<"}))
    from_file = meshctl("alert", "create", "-f", path)
    assert from_file.err == (f"meshctl: {path}: recover: recover (0.05) must be at least fire "
                             f"(0.2) when op is '<': the alert recovers once above it; nothing "
                             f"was saved\n")
    viewer = meshctl("alert", "create", *PAYMENTS[1:], "other",
                     MESHUI_TOKEN=token_for("vic", Role.VIEWER))
    assert viewer.code == 1 and "editing alert rules needs the operator role" in viewer.err
    assert AlertRule.objects.count() == 1


def test_a_rule_from_a_file_gets_as_yaml_that_updates_it_again(
    meshctl: Meshctl, tmp_path: Path
) -> None:
    path = write_file(tmp_path, "rule.yaml", yaml.safe_dump(RULE))
    result = meshctl("alert", "create", "-f", path)
    assert result.code == 0, result.err
    rule_id = AlertRule.objects.get().pk
    assert result.out.startswith(f"rule {rule_id} 'payments errors' created: ")

    shown = meshctl("alert", "get", "payments errors")
    assert shown.code == 0, shown.err
    header, _, document = shown.out.partition("\n")
    assert header.startswith(f"# rule {rule_id} 'payments errors': error_rate of checkout -> ")
    assert header.endswith(" ago")
    assert yaml.safe_load(document) == RULE
    # Edited and applied again, as get policy's YAML is.
    edited = write_file(tmp_path, "edited.yaml", shown.out.replace("fire: 0.2", "fire: 0.3"))
    updated = meshctl("alert", "update", str(rule_id), "-f", edited)
    assert updated.code == 0, updated.err
    assert updated.out.startswith(f"rule {rule_id} 'payments errors' updated: ")
    assert AlertRule.objects.get().fire == 0.3
    exported = meshctl("alert", "get", str(rule_id), "-o", "json")
    assert exported.json() == meshctl.api(f"/alerts/rules/{rule_id}")
    # What -o json prints (id, created_at, updated_at too) is taken from stdin.
    renamed = json.loads(exported.out) | {"name": "renamed"}
    assert meshctl("alert", "update", "payments errors", "-f", "-",
                   stdin=json.dumps(renamed)).code == 0
    assert AlertRule.objects.get().name == "renamed"
    not_a_rule = meshctl("alert", "create", "-f", write_file(tmp_path, "list.yaml", "- a\n"))
    assert not_a_rule.code == 2 and "must hold one alert rule (a mapping" in not_a_rule.err


def test_alert_update_changes_the_flags_given_and_keeps_the_rest(meshctl: Meshctl) -> None:
    rule = created(meshctl, *PAYMENTS, "--for", "10")
    result = meshctl("alert", "update", "payments errors", "--fire", "0.3", "--recover", "0.1",
                     "--name", "payments failing")
    assert result.code == 0, result.err
    assert result.out == (f"rule {rule['id']} 'payments failing' updated: error_rate of "
                          f"checkout -> payments > 30% over 1m (recovers < 10%) for 10s, "
                          f"critical\n")
    after = meshctl.api(f"/alerts/rules/{rule['id']}")
    assert after | {"updated_at": "-"} == rule | {
        "name": "payments failing", "fire": 0.3, "recover": 0.1, "updated_at": "-"}
    moved = meshctl("alert", "update", str(rule["id"]), "--service", "payments", "--label",
                    "team=core", "--label", "tier=1", "-o", "json")
    assert moved.code == 0, moved.err
    assert (moved.json()["target"], moved.json()["labels"]) == (
        {"service": "payments"}, {"team": "core", "tier": "1"})
    nothing = meshctl("alert", "update", str(rule["id"]))
    assert nothing.code == 2 and "give what to change (e.g. --fire 0.3)" in nothing.err


def test_alert_delete_by_id_or_name_and_what_a_missing_rule_says(meshctl: Meshctl) -> None:
    first = created(meshctl, *PAYMENTS)
    created(meshctl, "other", "--service", "catalog", "--metric", "rps", "--window", "60",
            "--op", "<", "--fire", "1")
    result = meshctl("alert", "delete", "payments errors")
    assert (result.code, result.out) == (
        0, f"rule {first['id']} 'payments errors' deleted, with its states and history\n")
    missing = meshctl("alert", "delete", "payments errors")
    assert (missing.code, missing.err) == (
        1, "meshctl: there is no alert rule named 'payments errors'; there are: 'other'\n")
    by_id = meshctl("alert", "delete", str(first["id"]))
    assert (by_id.code, by_id.err) == (1, f"meshctl: there is no alert rule {first['id']}\n")
    other = AlertRule.objects.get()
    gone = meshctl("alert", "delete", str(other.pk), "-o", "json")
    assert gone.json()["name"] == "other" and not AlertRule.objects.exists()
    assert meshctl("alert", "get", "x").err == (
        "meshctl: there is no alert rule named 'x'; there is no alert rule yet\n")


def test_alert_list_shows_every_rule_and_its_condition(meshctl: Meshctl) -> None:
    assert meshctl("alert", "list").out == (
        "no alert rule yet: meshctl alert create NAME ... makes one\n")
    payments = created(meshctl, *PAYMENTS, "--for", "10", "--keep-firing", "1m")
    catalog = created(meshctl, "catalog slow", "--service", "catalog", "--metric", "p95_ms",
                      "--window", "300", "--op", ">", "--fire", "250", "--severity", "info")
    header, *rows = meshctl("alert", "list").out.splitlines()
    assert header.split() == ["ID", "NAME", "TARGET", "CONDITION", "SEVERITY", "LABELS"]
    assert [cells(row) for row in rows] == [
        [str(catalog["id"]), "catalog slow", "catalog", "p95_ms > 250ms over 5m", "info", "-"],
        [str(payments["id"]), "payments errors", "checkout -> payments",
         "error_rate > 20% over 1m (recovers < 5%) for 10s, keeps firing 1m", "critical",
         "team=payments"]]
    assert header.index("CONDITION") == rows[0].index("p95_ms")
    assert meshctl("alert", "list", "-o", "json").json() == meshctl.api("/alerts/rules")


def test_alerts_shows_every_rule_and_target_with_its_state_since_value_and_severity(
    meshctl: Meshctl, redis_client: redis.Redis  # noqa: F811
) -> None:
    at = int(time.time()) - 30
    payments = created(meshctl, *PAYMENTS)
    slow = created(meshctl, "slow calls", "--edge", "*,catalog", "--metric", "p95_ms",
                   "--window", "60", "--op", ">", "--fire", "100", "--severity", "warning")
    quiet = created(meshctl, "quiet", "--service", "inventory", "--metric", "rps", "--window",
                    "60", "--op", "<", "--fire", "1", "--severity", "info")
    payments_failing(redis_client, at)
    evaluate(redis_client, at)
    fresh = created(meshctl, "fresh", "--service", "ratings", "--metric", "rps", "--window",
                    "60", "--op", "<", "--fire", "1")

    result = meshctl("alerts")
    assert result.code == 0, result.err
    header, *rows, summary = result.out.splitlines()
    assert header.split() == ["RULE", "NAME", "TARGET", "STATE", "SINCE", "VALUE", "SEVERITY"]
    table = [cells(row) for row in rows]
    assert [row[:4] for row in table] == [
        [str(fresh["id"]), "fresh", "ratings", "Normal"],
        [str(payments["id"]), "payments errors", "checkout -> payments", "Firing"],
        [str(quiet["id"]), "quiet", "inventory", "NoData"],
        [str(slow["id"]), "slow calls", "frontend -> catalog", "Firing"]]
    assert [row[5:] for row in table] == [
        ["-", "warning"], ["50%", "critical"], ["-", "info"], ["180ms", "warning"]]
    assert all(row[4].endswith(" ago") for row in table)
    assert header.index("STATE") == rows[0].index("Normal")
    assert summary == "4 alerts: 1 Normal, 2 Firing, 1 NoData; evaluated every 10 s"
    assert meshctl("alerts", "-o", "json").json() == meshctl.api("/alerts")

    firing = meshctl("alerts", "--state", "firing", "-o", "json").json()["alerts"]
    assert [a["name"] for a in firing] == ["payments errors", "slow calls"]
    assert [a["name"] for a in meshctl("alerts", "--severity", "info", "-o", "json").json()[
        "alerts"]] == ["quiet"]
    labelled = meshctl("alerts", "--label", "team=payments").out.splitlines()
    assert cells(labelled[1])[:2] == [str(payments["id"]), "payments errors"] and len(labelled) == 3
    assert meshctl("alerts", "--rule", "slow calls", "-o", "json").json() == meshctl.api(
        f"/alerts?rule={slow['id']}")
    assert meshctl("alerts", "--rule", str(quiet["id"]), "-o", "json").json()["alerts"][0][
        "state"] == "NoData"
    assert meshctl("alerts", "--state", "Recovering").out == "no alert matches those filters\n"
    assert meshctl("alerts", "--label", "team", MESHUI_URL=DEAD).code == 2
    bad_state = meshctl("alerts", "--state", "burning", MESHUI_URL=DEAD)
    assert bad_state.code == 2 and "'burning' is not a state: Normal, Pending, " in bad_state.err


def test_alerts_before_any_rule_says_how_to_make_one(meshctl: Meshctl) -> None:
    assert meshctl("alerts").out == "no alert rule yet: meshctl alert create NAME ... makes one\n"


def test_alerts_says_why_a_rule_is_in_error_and_escapes_hostile_text(
    meshctl: Meshctl, redis_client: redis.Redis  # noqa: F811
) -> None:
    hostile = created(meshctl, HOSTILE, "--service", "payments", "--metric", "rps", "--window",
                      "60", "--op", "<", "--fire", "1", "--label", f"team={HOSTILE[:4]}")
    at = int(time.time()) - 30
    payments_failing(redis_client, at)
    evaluate(redis_client, at)
    from meshui.alerts.models import AlertState

    AlertState.objects.filter(rule_id=hostile["id"]).update(
        state="Error", value=None, detail=f"the live graph store (Redis) is unavailable {HOSTILE}")
    for argv in (["alerts"], ["alert", "list"], ["alert", "get", str(hostile["id"])],
                 ["alert", "history", str(hostile["id"])], ["alerts", "-o", "json"],
                 ["alert", "get", str(hostile["id"]), "-o", "json"]):
        result = meshctl(*argv)
        assert result.code == 0, (argv, result.err)
        assert not any(c in result.out for c in "\x1b\x07\r\u202e"), argv
    lines = meshctl("alerts").out.splitlines()
    assert lines[1].split()[1] == "evil\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\u202e"
    assert lines[2] == ("evil\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\u202e on payments: Error: the live "
                        "graph store (Redis) is unavailable evil\\x1b]0;pwned\\x07\\x1b[2J\\x0d"
                        "\\u202e")
    assert meshctl("alerts", "-o", "json").json()["alerts"][0]["name"] == HOSTILE


def test_alert_history_lists_the_state_changes_newest_first(
    meshctl: Meshctl, redis_client: redis.Redis  # noqa: F811
) -> None:
    rule = created(meshctl, *PAYMENTS)
    assert meshctl("alert", "history", "payments errors").out == (
        f"rule {rule['id']} has not changed state yet\n")
    at = int(time.time()) // 10 * 10 - 200  # a cycle's start: its transitions are stamped so
    payments_failing(redis_client, at)
    evaluate(redis_client, at)
    evaluate(redis_client, at + 100)  # no traffic in that minute: NoData
    result = meshctl("alert", "history", "payments errors")
    assert result.code == 0, result.err
    header, newest, oldest = result.out.splitlines()
    assert header.split() == ["AT", "TARGET", "FROM", "TO", "VALUE", "DETAIL"]
    assert cells(newest)[1:5] == ["checkout -> payments", "Firing", "NoData", "-"]
    assert cells(oldest)[1:] == ["checkout -> payments", "Normal", "Firing", "50%", "0.5 > 0.2"]
    # 200 to 209 s ago when made, and up to 10 s more on a loaded machine by now.
    assert re.fullmatch(r"3m[23]\ds ago", cells(oldest)[0])
    assert meshctl("alert", "history", str(rule["id"]), "-o", "json").json() == meshctl.api(
        f"/alerts/rules/{rule['id']}/history?per_page=20")
    limited = meshctl("alert", "history", str(rule["id"]), "--limit", "1").out.splitlines()
    assert len(limited) == 3 and limited[-1] == (
        "the newest 1 of 2 state changes (--limit shows more)")
    assert meshctl("alert", "history", "1", "--limit", "501").code == 2


def write_last_hour(client: redis.Redis, now: int) -> None:
    """An hour of checkout -> payments: 10 calls a second, half failing 20 to 15 min ago."""
    traffic = Traffic(client)
    traffic.calls("checkout", "payments", range(now - 3700, now - 1200), 10, 0.0)
    traffic.calls("checkout", "payments", range(now - 1200, now - 900), 10, 0.5)
    traffic.calls("checkout", "payments", range(now - 900, now + 30), 10, 0.0)
    traffic.calls("fraud", "payments", range(now - 600, now + 30), 2, 0.0)
    traffic.write()


def test_alert_preview_shows_when_a_rule_would_have_fired_over_the_hour(
    meshctl: Meshctl, redis_client: redis.Redis  # noqa: F811
) -> None:
    write_last_hour(redis_client, int(time.time()))
    result = meshctl("alert", "preview", *PAYMENTS[1:], "--for", "30")
    assert result.code == 0, result.err
    header, pending, firing, summary = result.out.splitlines()
    assert header.split() == ["TARGET", "STATE", "FROM", "FOR", "WORST"]
    assert cells(pending)[:2] == ["checkout -> payments", "Pending"]
    assert cells(pending)[3] == "30s" and cells(pending)[2].endswith(" ago")
    assert cells(firing)[:2] == ["checkout -> payments", "Firing"]
    assert cells(firing)[-1] == "50%"  # the worst of the period: half the calls failed
    assert re.fullmatch(r"1[89]m(\d+s)? ago", cells(firing)[2]), firing
    assert summary == ("over the last hour the rule would have fired 1 time on 1 of 1 target "
                       "(evaluated every 10 s)")
    assert not AlertRule.objects.exists()

    saved = created(meshctl, *PAYMENTS)
    pattern = meshctl("alert", "preview", "--rule", "payments errors", "--edge", "*,payments",
                      "--metric", "rps", "--op", "<", "--fire", "3", "--recover", "3")
    assert pattern.code == 0, pattern.err
    lines = pattern.out.splitlines()
    assert lines[0].split()[0] == "TARGET" and lines[1].split()[:4] == [
        "fraud", "->", "payments", "NoData"]
    assert lines[-2] == "checkout -> payments: Normal throughout (now 10 req/s)"
    assert lines[-1].startswith("over the last hour the rule would have fired 1 time on 1 of 2 ")
    as_json = meshctl("alert", "preview", "--rule", str(saved["id"]), "-o", "json").json()
    assert (as_json["metric"], as_json["unit"], as_json["fire"]) == ("error_rate", "ratio", 0.2)
    refused = meshctl("alert", "preview", *PAYMENTS[1:], "--recover", "0.5")
    assert refused.err.startswith("meshctl: --recover: recover (0.5) must be at most fire")
    assert not refused.err.rstrip().endswith("nothing was saved")
    needs = meshctl("alert", "preview", "--service", "a", MESHUI_URL=DEAD)
    assert needs.code == 2 and "a preview needs --metric, --window" in needs.err
