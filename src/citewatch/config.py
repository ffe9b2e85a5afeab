"""Settings: defaults < citewatch.toml or [tool.citewatch] in pyproject.toml < environment < flags.

One frozen-ish :class:`Settings` object is built by the CLI and handed down the pipeline; no module
reads the environment or the config file itself (except :func:`archive_keys`, which reads the
archive.org keys from the environment only and keeps them out of every digest, row and log).

>>> parse_duration("3d"), parse_duration("36h"), parse_duration("90s"), parse_duration("1.5")
(259200.0, 129600.0, 90.0, 1.5)
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .net import ConnectTo, NetSettings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


class ConfigError(ValueError):
    """A config file or value that cannot be used (exit code 2)."""


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``'90s'``, ``'15m'``, ``'36h'``, ``'3d'``, ``'2w'`` or a plain number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 90s, 15m, 36h, 3d)")
    unit = match.group(2).lower() if match.group(2) else None
    return float(match.group(1)) * _UNIT_SECONDS[unit]


@dataclass(slots=True)
class Settings:
    """Every knob citewatch has. Field names are the config-file keys (with '-' or '_')."""

    db: str = "citewatch.db"
    out: str = "reports"
    base_url: str | None = None
    # -- network (net.py) --
    net: NetSettings = field(default_factory=NetSettings)
    per_host: int = 2
    host_interval: float = 0.0
    """Minimum seconds between request starts to one host."""
    max_redirects: int = 10
    max_body: int = 2 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    head_first: bool = False
    retries: int = 3
    """Attempts after the first, for transient failures only."""
    retry_after_cap: float = 30.0
    backoff: float = 0.5
    soft404_probe: bool = True
    canary: str | None = None
    """URL whose reachability tells us our own network is up; default: the Wayback endpoint."""
    # -- verdicts (verdict.py) --
    confirm_failures: int = 3
    confirm_span: float = 3 * 86400.0
    one_shot: bool = False
    max_age: float = 86400.0
    check_all: bool = False
    # -- archive (archive/) --
    wayback_url: str = "https://web.archive.org"
    availability_url: str | None = None
    """Base of the availability API; default: same as wayback_url."""
    save: bool = True
    dry_run: bool = False
    save_if_older: float = 365 * 86400.0
    lookup_max_age: float = 7 * 86400.0
    cdx_per_minute: float = 15.0
    spn_per_minute_keys: float = 5.0
    spn_per_minute_anon: float = 2.0
    spn_poll_interval: float = 5.0
    spn_poll_timeout: float = 120.0
    verify_snapshots: bool = False
    verify_replacements: bool = True
    """Replay the best snapshot of each URL a broken citation would be fixed with (the one
    ``fix`` writes) and fall back past captures rejected on replay."""
    # -- policy --
    ignore: list[str] = field(default_factory=list)
    """URL glob patterns never checked (recorded as skipped: ignored by config)."""
    formats: list[str] = field(default_factory=lambda: ["md", "html", "json", "csv"])

    def digest(self) -> str:
        """A short stable digest of the settings (no secrets are in Settings to begin with)."""
        data = asdict(self)
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]

    @property
    def canary_url(self) -> str:
        return self.canary or self.wayback_url.rstrip("/") + "/"


_DURATION_KEYS = {
    "confirm_span",
    "max_age",
    "save_if_older",
    "lookup_max_age",
    "host_interval",
    "retry_after_cap",
    "spn_poll_interval",
    "spn_poll_timeout",
}
_NET_KEYS = {
    "cacert",
    "timeout",
    "user_agent",
    "concurrency",
    "allow_private",
    "http2",
    "connect_timeout",
}


def find_config(start: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """citewatch.toml, else [tool.citewatch] in pyproject.toml, in the current folder."""
    folder = start or Path.cwd()
    candidate = folder / "citewatch.toml"
    if candidate.is_file():
        return candidate, _load_toml(candidate)
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        section = _load_toml(pyproject).get("tool", {}).get("citewatch")
        if isinstance(section, dict):
            return pyproject, section
    return None


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc


def apply(settings: Settings, values: dict[str, Any], origin: str) -> Settings:
    """Apply a mapping of config keys onto ``settings`` (in place; returns it)."""
    known = {f.name for f in fields(Settings)} | _NET_KEYS | {"connect_to"}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if isinstance(value, dict):  # allow [check], [archive] … tables: flatten them
            apply(settings, value, origin)
            continue
        if key not in known:
            raise ConfigError(f"{origin}: unknown setting {raw_key!r}")
        if value is None:
            continue
        try:
            if key in _DURATION_KEYS:
                value = parse_duration(value)
            elif key != "connect_to":
                value = _coerce(key, value)
            if key == "connect_to":
                specs = [value] if isinstance(value, str) else value
                if not isinstance(specs, list) or not all(isinstance(x, str) for x in specs):
                    raise ValueError(f"expected HOST1:PORT1:HOST2:PORT2 strings, got {value!r}")
                settings.net.connect_to = [ConnectTo.parse(s) for s in specs]
            elif key in _NET_KEYS:
                setattr(settings.net, key, value)
            else:
                setattr(settings, key, value)
        except ValueError as exc:
            raise ConfigError(f"{origin}: {raw_key}: {exc}") from exc
    return settings


_NET_TYPES = {
    "cacert": "str | None",
    "timeout": "float",
    "connect_timeout": "float | None",
    "user_agent": "str",
    "concurrency": "int",
    "allow_private": "bool",
    "http2": "bool",
}
_AT_LEAST_ONE = {"concurrency", "per_host", "confirm_failures"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(key: str, value: Any) -> Any:
    """Check a config value against its field's type, converting the obvious spellings.

    A config file is typed by hand: ``allow_private = "false"`` must not switch the SSRF guard
    off, and ``ignore = "https://ads.example/*"`` is one pattern, not a list of characters.
    """
    kind = _NET_TYPES.get(key) or str(next(f.type for f in fields(Settings) if f.name == key))
    optional = kind.endswith("| None")
    base = kind.removesuffix(" | None").strip()
    if value is None and optional:
        return None
    if base == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"expected true or false, got {value!r}")
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"expected a whole number, got {value!r}")
        number = int(value)
        if key in _AT_LEAST_ONE and number < 1 or number < 0:
            raise ValueError(f"must be at least {1 if key in _AT_LEAST_ONE else 0}, got {number}")
        return number
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected a number, got {value!r}")
        number = float(value)
        if number < 0:
            raise ValueError(f"must not be negative, got {number}")
        return number
    if base == "list[str]":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"expected a list of strings, got {value!r}")
        return list(items)
    if base == "str":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    return value


ENV_PREFIX = "CITEWATCH_"
#: CITEWATCH_* variables that are not settings (CITEWATCH_DEBUG=1 shows tracebacks).
_NOT_SETTINGS = {"debug"}


def from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """CITEWATCH_<KEY> variables, e.g. CITEWATCH_DB, CITEWATCH_WAYBACK_URL, CITEWATCH_CONCURRENCY."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    types = {f.name: str(f.type) for f in fields(Settings)}
    types.update(
        {
            "concurrency": "int",
            "timeout": "float",
            "connect_timeout": "float",
            "allow_private": "bool",
            "http2": "bool",
        }
    )
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in _NOT_SETTINGS:
            continue
        kind = types.get(key, "str")
        try:
            if kind == "int":
                values[key] = int(raw)
            elif kind == "float" and key not in _DURATION_KEYS:
                values[key] = float(raw)
            elif kind == "bool":
                values[key] = raw.strip().lower() in {"1", "true", "yes", "on"}
            else:
                values[key] = raw
        except ValueError as exc:
            raise ConfigError(f"environment: {name}: {exc}") from exc
    return values


def load(config_file: str | None = None, cwd: Path | None = None) -> tuple[Settings, str | None]:
    """Defaults < config file < environment. Returns the settings and the config file used."""
    settings = Settings()
    used: str | None = None
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {config_file}")
        data = _load_toml(path)
        if path.name == "pyproject.toml":
            data = data.get("tool", {}).get("citewatch", {})
        apply(settings, data, str(path))
        used = str(path)
    else:
        found = find_config(cwd)
        if found:
            apply(settings, found[1], str(found[0]))
            used = str(found[0])
    apply(settings, from_environment(), "environment")
    return settings, used


def archive_keys() -> tuple[str, str] | None:
    """(access, secret) from IA_ACCESS_KEY / IA_SECRET_KEY, or None (anonymous). Never store or
    print these. Raises :class:`ConfigError` — naming the variable, never its value — when only
    one is set (a typo would otherwise mean anonymous captures at a third of the pace, silently)
    or a value could not go in an HTTP header."""
    access = os.environ.get("IA_ACCESS_KEY", "").strip()
    secret = os.environ.get("IA_SECRET_KEY", "").strip()
    if not access and not secret:
        return None
    for name, value, other in (
        ("IA_ACCESS_KEY", access, "IA_SECRET_KEY"),
        ("IA_SECRET_KEY", secret, "IA_ACCESS_KEY"),
    ):
        if not value:
            raise ConfigError(
                f"{other} is set but {name} is not: set both (archive.org S3 keys), or neither"
            )
        if not _KEY_TEXT.fullmatch(value):
            raise ConfigError(
                f"{name} holds characters an archive.org key never has (spaces, control or "
                "non-ASCII characters); check how it is set"
            )
    return access, secret


_KEY_TEXT = re.compile(r"[!-~]+")  # printable ASCII, no spaces: what fits "LOW access:secret"


def ignore_reason(url: str, patterns: Iterable[str], rules: Mapping[str, str]) -> str | None:
    """Why ``url`` is ignored — a stored ``citewatch ignore`` rule (its reason), or a glob of the
    config's ``ignore`` list — or None. Probing, verdict counts, the exit code and the reports all
    ask this one question."""
    if url in rules:
        return rules[url] or "ignore rule"
    for pattern in patterns:
        if fnmatch.fnmatchcase(url, pattern):
            return f"matches ignore pattern {pattern!r}"
    return None
