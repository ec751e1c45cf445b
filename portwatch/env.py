"""Typed readers for settings that come from the environment.

Each helper fails loudly on a value it cannot read, naming the variable, so a
typo in a deployment stops the process at start-up instead of running with a
silently different configuration.
"""

import os

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class EnvError(ValueError):
    """A variable is set to a value its reader cannot accept."""


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False, *, blank_is_default: bool = False) -> bool:
    """``blank_is_default``: an empty value means the default, not "off". For variables
    whose default depends on another one: docker compose passes one the operator
    left unset as empty."""
    raw = os.environ.get(name)
    if raw is None or (blank_is_default and raw.strip() == ""):
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise EnvError(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise EnvError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise EnvError(f"{name}={value} is below the minimum of {minimum}")
    if maximum is not None and value > maximum:
        raise EnvError(f"{name}={value} is above the maximum of {maximum}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


DEFAULT_BIND = "127.0.0.1:8000"


def bind_url(bind: str | None = None) -> str:
    """Where a browser on this machine reaches a web server bound to ``bind`` (gunicorn's HOST:PORT).

    ``bind`` defaults to PORTWATCH_BIND, read as the Procfile reads it (unset
    or empty: 127.0.0.1:8000). A wildcard address is reached on loopback.
    """
    bind = (os.environ.get("PORTWATCH_BIND") if bind is None else bind) or DEFAULT_BIND
    host, port = bind, "8000"  # gunicorn's port when the bind names none
    if bind.startswith("["):  # [IPv6]:port
        host, _, rest = bind.partition("]")
        host, port = f"{host}]", rest.removeprefix(":") or port
    elif ":" in bind:
        host, _, port = bind.rpartition(":")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)  # noqa: S104 - reading a bind
    return f"http://{host}:{port}"
