"""Where meshctl finds meshui and its token: the environment, then the config file.

``MESHUI_URL`` and ``MESHUI_TOKEN`` win over the file that ``meshctl login`` writes
(``$MESHCTL_CONFIG``, or ``~/.config/meshctl/config.yaml``, mode 0600 since it holds a
token), so a script or CI job can point one command elsewhere without touching it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from meshui.cli.errors import usage

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_CONFIG_BYTES = 64 * 1024  # a config is two lines; anything bigger is not ours


@dataclass(frozen=True, slots=True)
class Target:
    """The meshui to talk to and the token to show it (None: no token configured)."""

    url: str
    token: str | None
    config_path: Path


def config_path(env: Mapping[str, str]) -> Path:
    explicit = env.get("MESHCTL_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "meshctl" / "config.yaml"


def checked_url(url: str, where: str) -> str:
    """``url`` without a trailing slash, or a usage error naming ``where`` it came from."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise usage(f"{where} must be an http:// or https:// URL such as {DEFAULT_URL}, "
                    f"got {url!r}")
    if parts.query or parts.fragment:
        raise usage(f"{where} must not have a query or fragment, got {url!r}")
    return url.rstrip("/")


def read_config(path: Path) -> dict[str, str]:
    """The config file's ``url`` and ``token`` ({} when there is no file)."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise usage(f"cannot read the config file {path}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise usage(f"the config file {path} is over {MAX_CONFIG_BYTES} bytes; "
                    f"remove it and run meshctl login")
    try:
        loaded = yaml.safe_load(raw.decode("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise usage(f"the config file {path} is not valid YAML ({type(exc).__name__}); "
                    f"remove it and run meshctl login") from None
    if not isinstance(loaded, dict):
        raise usage(f"the config file {path} must be a mapping with url and token; "
                    f"remove it and run meshctl login")
    return {key: str(loaded[key]) for key in ("url", "token") if loaded.get(key)}


def resolve(env: Mapping[str, str]) -> Target:
    """The environment first, then the config file, then the default URL."""
    path = config_path(env)
    needs_file = not (env.get("MESHUI_URL") and env.get("MESHUI_TOKEN"))
    stored = read_config(path) if needs_file else {}
    if env.get("MESHUI_URL"):
        url = checked_url(env["MESHUI_URL"], "MESHUI_URL")
    elif "url" in stored:
        url = checked_url(stored["url"], f"url in {path}")
    else:
        url = DEFAULT_URL
    token = env.get("MESHUI_TOKEN") or stored.get("token")
    return Target(url=url, token=token.strip() if token else None, config_path=path)


def write_config(path: Path, url: str, token: str) -> None:
    """Write the file readable by its owner only (it holds a bearer token)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_CREAT with 0600 so the token is never readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)  # an existing file keeps its mode otherwise
            yaml.safe_dump({"url": url, "token": token}, file, sort_keys=False)
    except OSError as exc:
        raise usage(f"cannot write the config file {path}: {exc.strerror}; set "
                    f"MESHCTL_CONFIG to a writable path") from None


def loose_permissions(path: Path) -> bool:
    """Whether others than the owner may read the config file (it holds a token)."""
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False
