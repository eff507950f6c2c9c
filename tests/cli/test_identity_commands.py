"""meshctl token and certs against a real meshui: join tokens through the real API (admin
only), certificates issued by meshui's own CA and issuance code (tests/meshui/identity/
issued.py). Relative times are matched loosely: a loaded machine takes seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from meshui.accounts.models import ApiToken
from meshui.accounts.roles import Role
from meshui.identity.models import JoinToken, token_digest
from meshui.policy.models import AuditEntry
from tests.cli.conftest import Meshctl, live_instance
from tests.cli.test_alert_commands import cells
from tests.meshui.identity.issued import issue_certificate
from tests.meshui.users import make_user

HOSTILE = "payments-1\x1b]0;pwned\x07\u202e"
ADMIN_ONLY = ("meshctl: join tokens need the admin role: ask an admin, or log in with an "
              "admin's API token (meshctl login)\n")


@pytest.fixture
def admin(server: str, tmp_path: Path) -> Meshctl:
    """meshctl logged in as the admin ada."""
    token = ApiToken.issue(make_user("ada", Role.ADMIN), "laptop")[1]
    env = {"MESHUI_URL": server, "MESHUI_TOKEN": token,
           "MESHCTL_CONFIG": str(tmp_path / "admin" / "config.yaml")}
    return Meshctl(env=env, url=server, token=token)


def made(meshctl: Meshctl, *argv: str) -> dict:
    result = meshctl("token", "create", *argv, "-o", "json")
    assert result.code == 0, result.err
    return result.json()  # type: ignore[no-any-return]


def test_token_create_prints_the_token_once_with_its_id_and_expiry(admin: Meshctl) -> None:
    result = admin("token", "create", "--service", "payments", "--expires-in", "30d",
                   "--description", "payments in eu-1")
    assert result.code == 0, result.err
    row = JoinToken.objects.get()
    lines = result.out.splitlines()
    assert re.fullmatch(rf"join token {row.pk} for payments \(payments in eu-1\) created; it "
                        r"expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (30d|29d23h)\)\.",
                        lines[0]), lines[0]
    assert lines[1] == lines[3] == ""
    token = lines[2].strip()
    assert lines[2] == f"    {token}" and token_digest(token) == row.token_hash
    assert lines[4] == "Copy it now: it is shown this once (meshui keeps only its hash)."
    assert lines[5] == ("A payments sidecar joins with it: sidecar --token TOKEN (or "
                        f"MESHUI_JOIN_TOKEN); revoke it with meshctl token revoke {row.pk}.")
    assert len(lines) == 6
    assert row.expires_at - row.created_at == timedelta(days=30)
    assert (row.description, row.created_by_name) == ("payments in eu-1", "ada")
    assert AuditEntry.objects.filter(action="join_token_created").count() == 1


def test_quiet_prints_only_the_token_and_json_the_record(admin: Meshctl) -> None:
    quiet = admin("token", "create", "--service", "catalog", "--quiet", "--expires-in", "3600")
    assert quiet.code == 0, quiet.err
    assert re.fullmatch(r"mjt_[A-Za-z0-9_-]{43}\n", quiet.out), quiet.out
    row = JoinToken.objects.get()
    assert token_digest(quiet.out.strip()) == row.token_hash
    assert row.expires_at - row.created_at == timedelta(seconds=3600)

    record = made(admin, "--service", "catalog")
    assert record["token"].startswith("mjt_") and record["state"] == "active"
    assert record["prefix"] == record["token"][:12]
    both = admin("token", "create", "--service", "catalog", "-q", "-o", "json")
    assert (both.code, both.out) == (2, "")
    assert JoinToken.objects.count() == 2


def test_token_create_names_the_flag_at_fault_and_makes_nothing(admin: Meshctl) -> None:
    short = admin("token", "create", "--service", "payments", "--expires-in", "30s")
    assert (short.code, short.err) == (2, "meshctl: --expires-in 30s: a join token lasts from "
                                          "1m to 365d\n")
    assert admin("token", "create", "--service", "payments", "--expires-in", "2y").code == 2
    bad = admin("token", "create", "--service", "Pay_ments")
    assert bad.code == 1
    assert bad.err.startswith("meshctl: --service: service ") and "no token was made" in bad.err
    long = admin("token", "create", "--service", "payments", "--description", "x" * 201)
    assert long.code == 1
    assert long.err.startswith("meshctl: --description: ") and "200" in long.err
    assert not JoinToken.objects.exists()


def test_join_tokens_need_the_admin_role(meshctl: Meshctl) -> None:
    for argv in (("token", "list"), ("token", "create", "--service", "payments"),
                 ("token", "revoke", "1")):
        result = meshctl(*argv)
        assert (result.code, result.out, result.err) == (1, "", ADMIN_ONLY), argv
    assert not JoinToken.objects.exists()


def test_token_list_shows_what_can_join_and_all_with_all(admin: Meshctl) -> None:
    assert admin("token", "list").out == ("no join token yet: meshctl token create --service "
                                          "NAME makes one\n")
    payments = made(admin, "--service", "payments", "--description", "eu-1")
    catalog = made(admin, "--service", "catalog")
    gone = made(admin, "--service", "payments")
    assert admin("token", "revoke", str(gone["id"])).code == 0
    old = made(admin, "--service", "reviews")
    JoinToken.objects.filter(pk=old["id"]).update(expires_at=timezone.now() - timedelta(hours=1))
    JoinToken.objects.filter(pk=catalog["id"]).update(
        last_used_at=timezone.now() - timedelta(minutes=5))

    result = admin("token", "list")
    assert result.code == 0, result.err
    header, *rows, hidden = result.out.splitlines()
    assert cells(header) == ["ID", "SERVICE", "PREFIX", "STATE", "EXPIRES", "LAST USED",
                             "CREATED BY", "DESCRIPTION"]
    assert [cells(row)[:4] for row in rows] == [
        [str(catalog["id"]), "catalog", catalog["prefix"] + "…", "active"],
        [str(payments["id"]), "payments", payments["prefix"] + "…", "active"]]
    assert re.fullmatch(r"in (30d|29d23h)", cells(rows[0])[4])
    assert re.fullmatch(r"[56]m ago", cells(rows[0])[5]), rows[0]
    assert cells(rows[1])[5:] == ["never", "ada", "eu-1"]
    assert hidden == "and 2 revoked or expired (meshctl token list --all lists them)"

    everything = admin("token", "list", "--all").out.splitlines()
    states = {cells(row)[0]: cells(row)[3:5] for row in everything[1:]}
    assert states[str(old["id"])][0] == "expired"
    assert re.fullmatch(r"(59|60)m ago|1h ago", states[str(old["id"])][1])
    assert states[str(gone["id"])][0] == "revoked"
    assert re.fullmatch(r"revoked \d+s ago", states[str(gone["id"])][1])
    assert len(everything) == 5

    only = admin("token", "list", "--service", "payments", "--all").out.splitlines()
    assert [cells(row)[0] for row in only[1:]] == [str(gone["id"]), str(payments["id"])]
    assert admin("token", "list", "--service", "reviews").out == (
        "no active join token for reviews\nand 1 revoked or expired (meshctl token list --all "
        "lists it)\n")
    as_json = admin("token", "list", "--service", "payments", "-o", "json").json()
    assert as_json == {"join_tokens": [t for t in admin.api("/join-tokens")["join_tokens"]
                                       if t["service"] == "payments"]}
    assert all("token" not in t for t in as_json["join_tokens"])


def test_token_revoke_says_the_sidecars_were_disconnected_and_is_idempotent(
        admin: Meshctl) -> None:
    token = made(admin, "--service", "payments")
    result = admin("token", "revoke", str(token["id"]))
    assert result.code == 0, result.err
    assert result.out == (f"join token {token['id']} ({token['prefix']}…) for payments revoked: "
                          "the sidecars that joined with it were disconnected, cannot join "
                          "with it again, and their certificates will not be renewed\n")
    assert JoinToken.objects.get().revoked_at is not None
    again = admin("token", "revoke", token["prefix"] + "…")
    assert again.code == 0, again.err
    assert re.fullmatch(rf"join token {token['id']} \({token['prefix']}…\) for payments was "
                        r"already revoked \d+s ago; nothing changed\n", again.out), again.out
    assert AuditEntry.objects.filter(action="join_token_revoked").count() == 1
    as_json = admin("token", "revoke", str(token["id"]), "-o", "json")
    assert as_json.json()["state"] == "revoked"

    missing = admin("token", "revoke", "999")
    assert (missing.code, missing.err) == (1, "meshctl: there is no join token '999' (meshctl "
                                              "token list --all lists them, with their ids)\n")


def test_certs_shows_each_proxy_s_certificate_with_warnings_and_the_ca(admin: Meshctl,
                                                                     meshctl: Meshctl) -> None:
    now = timezone.now()
    row, _ = JoinToken.issue("payments", created_by_name="tests")
    issue_certificate("payments", HOSTILE, at=now - timedelta(hours=30), token=row)
    renewed = issue_certificate("payments", HOSTILE, at=now - timedelta(hours=20), token=row)
    fresh = issue_certificate("catalog", "catalog-1")
    live_instance("catalog", "v1", "catalog-1")

    result = meshctl("certs")  # a viewer's (here an operator's) read: no admin needed
    assert result.code == 0, result.err
    header, catalog, payments, ca = result.out.splitlines()
    assert cells(header) == ["PROXY", "SERVICE", "SPIFFE ID", "SERIAL", "NOT AFTER",
                             "LAST ROTATION", "ISSUED", "CONNECTED", "WARNINGS"]
    first = cells(catalog)
    assert first[:4] == ["catalog-1", "catalog", "spiffe://meshui.local/service/catalog",
                         fresh["serial"][:8] + "…"]
    end = datetime.fromtimestamp(fresh["not_after"], UTC)
    assert re.fullmatch(rf"in (24h|23h59m|23h58m) \({end:%Y-%m-%d %H:%M:%S} UTC\)", first[4])
    assert first[5:] == ["never", "1", "yes", "-"]
    second = cells(payments)
    assert second[0] == "payments-1\\x1b]0;pwned\\x07\\u202e"
    assert second[3] == renewed["serial"][:8] + "…"
    assert re.fullmatch(r"in (4h|3h59m|3h58m) \(.* UTC\)", second[4]), second[4]
    assert second[5] == "20h ago"
    assert second[6:8] == ["2", "no"]
    assert re.fullmatch(r"expires in (4 h|3 h) \(not renewed at two thirds of its life\)",
                        second[8]), second[8]
    assert re.fullmatch(r"CA: CN=meshui root CA meshui\.local \(generated by meshui\), serial "
                        r"[0-9a-f]{8}…, not after in \d+d(\d+h)? \(.* UTC\); trust domain "
                        r"meshui\.local, trust bundle [0-9a-f]{16}", ca), ca
    assert "\x1b" not in result.out and "\u202e" not in result.out

    expiring = meshctl("certs", "--expiring", "6h").out.splitlines()
    assert [cells(line)[1] for line in expiring[1:-1]] == ["payments"]
    assert meshctl("certs", "--service", "catalog").out.splitlines()[1].startswith("catalog-1")
    assert meshctl("certs", "--service", "catalog", "--expiring", "1h").out.splitlines()[0] == (
        "no certificate of catalog expiring within 1h")
    assert meshctl("certs", "-o", "json").json() == admin.api("/certificates")
    cut = meshctl("certs", "--service", "catalog", "-o", "json").json()
    assert [c["proxy_id"] for c in cut["certificates"]] == ["catalog-1"]


def test_certs_before_any_sidecar_says_how_to_join(meshctl: Meshctl) -> None:
    lines = meshctl("certs").out.splitlines()
    assert lines[0] == ("no sidecar holds a certificate yet: make a join token (meshctl token "
                        "create --service NAME) and start the sidecar with --token TOKEN")
    assert lines[1].startswith("CA: CN=meshui root CA meshui.local")
