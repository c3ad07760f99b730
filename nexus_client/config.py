"""Where the `nexus` command finds its server and key.

In order, the first that says wins:
1. `--url` / `--key` on the command line;
2. a profile named with `--profile` or `NEXUS_PROFILE`, from the config file;
3. `NEXUS_URL` and `NEXUS_API_KEY` (or `NEXUS_KEY`, as the README's curl examples use);
4. the config file's default profile (`default_profile`, else the one named `default`);
5. http://localhost:8000/api/v1 and no key.

A profile named explicitly beats the environment so that a key exported for one server is
never sent to another. The config file is `NEXUS_CONFIG`, else the first of
`~/.config/nexus/config.toml`, `config.yaml`, `config.yml` (`$XDG_CONFIG_HOME` if set):

    default_profile = "local"
    [profiles.local]
    url = "http://localhost:8000/api/v1"
    key = "nxs_..."            # or key_file = "~/src/nexus/.local/state/admin-key"
    [profiles.prod]
    url = "https://abc.execute-api.eu-west-1.amazonaws.com/api/v1"
    key_env = "NEXUS_PROD_KEY"  # the key read from this variable
    timeout = 20
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_client.client import DEFAULT_TIMEOUT, DEFAULT_URL


class ConfigError(ValueError):
    """The config file cannot be read, or names a profile it does not have."""


@dataclass(frozen=True)
class Settings:
    url: str = DEFAULT_URL
    key: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    profile: str | None = None


def config_path(env: Mapping[str, str]) -> Path | None:
    if env.get("NEXUS_CONFIG"):
        return Path(env["NEXUS_CONFIG"]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "nexus"
    for name in ("config.toml", "config.yaml", "config.yml"):
        if (base / name).is_file():
            return base / name
    return None


def read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError
        raise ConfigError(f"{path} is not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
        raise ConfigError(f"{path}: expected a table `profiles` of named profiles")
    return data


def _profile_values(
    data: dict[str, Any], name: str, path: Path | None, env: Mapping[str, str]
) -> dict[str, Any]:
    profiles = data.get("profiles", {})
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"no profile '{name}' in {path or 'the config file'} (profiles: {known})")
    profile = profiles[name]
    if not isinstance(profile, dict):
        raise ConfigError(f"profile '{name}' must be a table of url, key, timeout")
    out: dict[str, Any] = {}
    if profile.get("url"):
        out["url"] = str(profile["url"])
    if profile.get("key"):
        out["key"] = str(profile["key"])
    elif profile.get("key_env"):
        out["key"] = env.get(str(profile["key_env"])) or None
    elif profile.get("key_file"):
        key_file = Path(str(profile["key_file"])).expanduser()
        try:
            out["key"] = key_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"profile '{name}': cannot read {key_file}: {exc.strerror}") from exc
    if profile.get("timeout") is not None:
        out["timeout"] = float(profile["timeout"])
    return out


def resolve(
    *,
    url: str | None = None,
    key: str | None = None,
    profile: str | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The settings for one command, from its options, the environment and the config file."""
    env = os.environ if env is None else env
    path = config_path(env)
    data = read_config(path) if path is not None and path.is_file() else {}
    if path is not None and not path.is_file() and env.get("NEXUS_CONFIG"):
        raise ConfigError(f"NEXUS_CONFIG names {path}, which does not exist")
    chosen = profile or env.get("NEXUS_PROFILE") or None
    values: dict[str, Any] = {}
    if chosen is None:
        default = data.get("default_profile") or (
            "default" if "default" in data.get("profiles", {}) else None
        )
        if default:
            values.update(_profile_values(data, str(default), path, env))
            chosen = str(default)
        environment = {
            "url": env.get("NEXUS_URL"),
            "key": env.get("NEXUS_API_KEY") or env.get("NEXUS_KEY"),
        }
        values.update({k: v for k, v in environment.items() if v})
    else:
        values.update(_profile_values(data, chosen, path, env))
    if url:
        values["url"] = url
    if key:
        values["key"] = key
    if timeout is not None:
        values["timeout"] = timeout
    return Settings(profile=chosen, **values)
