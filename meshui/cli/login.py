"""``meshctl login``: check an API token with ``GET /api/v1/me`` and save it.

The token comes from ``--token``, else standard input when it is not a terminal (``pass
show meshui | meshctl login``), else a prompt that does not echo. It is only written once
meshui has accepted it, to a file only its owner may read (config.py).
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Mapping
from typing import IO, TextIO

from meshui.cli.client import ApiClient
from meshui.cli.config import DEFAULT_URL, Target, checked_url, config_path, read_config, write_config
from meshui.cli.errors import Exit, usage
from meshui.cli.terminal import clean

TOKEN_PREFIX = "mshu_"  # meshui.accounts.models.TOKEN_PREFIX (not imported: no Django here)
MAX_TOKEN = 200  # the server refuses longer ones unread


def _url(args: argparse.Namespace, env: Mapping[str, str], stored: Mapping[str, str]) -> str:
    if args.url:
        return checked_url(args.url, "--url")
    if env.get("MESHUI_URL"):
        return checked_url(env["MESHUI_URL"], "MESHUI_URL")
    return checked_url(stored.get("url", DEFAULT_URL), "the url in the config file")


def _token(args: argparse.Namespace, stdin: IO[str], err: TextIO) -> str:
    if args.token:
        token = args.token
    elif stdin.isatty():
        token = getpass.getpass("API token (mshu_..., from the Tokens page): ", stream=err)
    else:
        token = stdin.readline(MAX_TOKEN + 2)
    token = token.strip()
    if not token:
        raise usage("no API token given: create one on the Tokens page (or POST "
                    "/api/v1/tokens), then meshctl login --token mshu_... (or pipe it in)")
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN or not token.isprintable():
        raise usage(f"that is not a meshui API token: one starts with {TOKEN_PREFIX} and is "
                    f"under {MAX_TOKEN} characters")
    return token


def login(args: argparse.Namespace, env: Mapping[str, str], stdin: IO[str], out: TextIO,
          err: TextIO) -> int:
    path = config_path(env)
    url = _url(args, env, read_config(path))
    token = _token(args, stdin, err)
    with ApiClient(Target(url=url, token=token, config_path=path)) as client:
        me = client.get("/me")
    write_config(path, url, token)
    role = me.get("role") or "no role"
    print(clean(f"logged in to {url} as {me.get('username', '?')} ({role}); "
                f"token saved in {path}"), file=out)
    for name in ("MESHUI_URL", "MESHUI_TOKEN"):
        if env.get(name):
            print(f"meshctl: warning: {name} is set and wins over the saved config",
                  file=err)
    return Exit.OK
