"""meshctl login and the config file; the exit codes of the failures a person meets."""

from __future__ import annotations

import http.server
import stat
import threading
from pathlib import Path

import yaml

from meshui.accounts.models import ApiToken
from meshui.accounts.roles import Role
from tests.cli.conftest import Meshctl, token_for
from tests.ports import free_port


def logged_out(meshctl: Meshctl) -> dict[str, str]:
    """The environment without MESHUI_URL / MESHUI_TOKEN: only the config file counts."""
    return {"MESHCTL_CONFIG": meshctl.env["MESHCTL_CONFIG"]}


def test_login_checks_the_token_and_writes_a_private_config_the_commands_use(
    meshctl: Meshctl,
) -> None:
    token = token_for("otto", Role.OPERATOR)
    meshctl.env = logged_out(meshctl)
    result = meshctl("login", "--url", meshctl.url + "/", "--token", token)
    path = Path(meshctl.env["MESHCTL_CONFIG"])
    assert result.code == 0, result.err
    assert result.out == f"logged in to {meshctl.url} as otto (operator); token saved in {path}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == {"url": meshctl.url, "token": token}
    assert meshctl("apply", "-f", "-", stdin="{}").code == 0
    assert meshctl("history", "-o", "json").json()["revisions"][0]["author"] == "otto"


def test_login_reads_the_token_from_stdin_and_keeps_the_saved_url(meshctl: Meshctl) -> None:
    meshctl.env = logged_out(meshctl)
    assert meshctl("login", "--url", meshctl.url, stdin=meshctl.token + "\n").code == 0
    again = meshctl("login", stdin=token_for("ann", Role.VIEWER) + "\n")
    assert again.code == 0 and " as ann (viewer)" in again.out


def test_the_environment_wins_over_the_config_file(meshctl: Meshctl) -> None:
    meshctl.env = logged_out(meshctl)
    assert meshctl("login", "--url", meshctl.url, "--token", meshctl.token).code == 0
    dead = f"http://127.0.0.1:{free_port()}"
    assert meshctl("history", MESHUI_URL=dead).code == 3
    refused = meshctl("history", MESHUI_TOKEN="mshu_not-a-token")
    assert refused.code == 1 and "log in again" in refused.err


def test_a_refused_token_at_login_writes_nothing(meshctl: Meshctl) -> None:
    meshctl.env = logged_out(meshctl)
    result = meshctl("login", "--url", meshctl.url, "--token", "mshu_wrong")
    assert result.code == 1 and "log in again with a new token" in result.err
    assert not Path(meshctl.env["MESHCTL_CONFIG"]).exists()
    not_a_token = meshctl("login", "--url", meshctl.url, "--token", "hunter2")
    assert not_a_token.code == 2 and "starts with mshu_" in not_a_token.err
    assert "hunter2" not in not_a_token.err
    empty = meshctl("login", "--url", meshctl.url, stdin="")
    assert empty.code == 2 and "no API token given" in empty.err


def test_a_revoked_token_is_refused_with_a_hint_to_log_in_again(meshctl: Meshctl) -> None:
    assert meshctl("history").code == 0
    ApiToken.objects.get(prefix=meshctl.token[:12]).revoke()
    result = meshctl("apply", "-f", "-", stdin="{}")
    assert result.code == 1
    assert result.err.startswith("meshctl: the API token was refused (the API token is "
                                 "invalid or revoked;")
    assert result.err.endswith("; log in again with a new token: meshctl login\n")
    assert meshctl("get", "policy").code == 1


def test_without_any_token_it_says_to_log_in(meshctl: Meshctl) -> None:
    result = meshctl("history", MESHUI_TOKEN="", MESHCTL_CONFIG="/nonexistent/config.yaml")
    assert (result.code, result.err) == (
        1, "meshctl: not logged in: run meshctl login (or set MESHUI_TOKEN)\n")


def test_an_unreachable_server_is_exit_3_for_every_command(meshctl: Meshctl) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for argv in (["get", "policy"], ["history"], ["apply", "-f", "-"], ["proxy-status"],
                 ["stat"], ["login", "--url", dead, "--token", "mshu_x"]):
        result = meshctl(*argv, stdin="{}", MESHUI_URL=dead)
        assert result.code == 3, (argv, result.err)
        assert result.err == (f"meshctl: cannot reach meshui at {dead} (ConnectError: [Errno "
                              f"111] Connection refused); is it running? Set MESHUI_URL or "
                              f"run meshctl login --url URL\n")


def test_a_url_that_is_not_meshui_is_named(meshctl: Meshctl) -> None:
    result = meshctl("history", MESHUI_URL=meshctl.url + "/nothing-here")
    assert result.code == 1 and "is MESHUI_URL a meshui?" in result.err
    bad = meshctl("history", MESHUI_URL="ftp://example.com")
    assert bad.code == 2 and "MESHUI_URL must be an http:// or https:// URL" in bad.err


def test_usage_errors_are_one_line_and_exit_2(meshctl: Meshctl, tmp_path: Path) -> None:
    for argv in (["frobnicate"], [], ["get", "services"], ["apply"], ["history", "--limit", "x"],
                 ["stat", "--window", "0"], ["diff", "-1"]):
        result = meshctl(*argv)
        assert result.code == 2, argv
        assert result.err.startswith("meshctl: ") and result.err.count("\n") == 1, argv
        assert result.out == ""
    corrupt = tmp_path / "config.yaml"
    corrupt.write_text("url: [unclosed\n")
    result = meshctl("history", MESHUI_URL="", MESHCTL_CONFIG=str(corrupt))
    assert result.code == 2 and "is not valid YAML" in result.err


class Redirecting(http.server.BaseHTTPRequestHandler):
    """A server that sends everything to https (a meshui behind a TLS-only proxy)."""

    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        Redirecting.seen.append(self.headers.get("Authorization"))
        self.send_response(301)
        self.send_header("Location", "https://mesh.example.com" + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_redirect_is_not_followed_and_names_where_it_points(meshctl: Meshctl) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = meshctl("history", MESHUI_URL=url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.code == 2
    assert result.err == (f"meshctl: {url} redirects to https://mesh.example.com/api/v1/policy/"
                          f"revisions?page=1&per_page=20; set MESHUI_URL (or meshctl login "
                          f"--url) to meshui's own URL\n")
    assert len(Redirecting.seen) == 1  # asked once, the token never sent on to the new place
