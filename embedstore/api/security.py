"""API keys, loopback detection and confinement of server-side paths to the configured roots."""

from __future__ import annotations

import hmac
import ipaddress
import re
from pathlib import Path

from fastapi import Request

from embedstore.config import Settings
from embedstore.errors import InvalidConfig, NotFound, PathNotAllowed, Unauthorized

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a prefix family's model, not a path


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def anonymous_allowed(settings: Settings) -> bool:
    """Requests need no key only when no keys are configured and the server binds to loopback."""
    return (
        not settings.api_key_list
        and settings.allow_anonymous_loopback
        and is_loopback(settings.host)
    )


def check_auth_config(settings: Settings) -> None:
    """Refuse to serve a non-loopback address without API keys."""
    if not settings.api_key_list and not anonymous_allowed(settings):
        raise InvalidConfig(
            f"Refusing to serve {settings.host!r} without API keys: set EMBEDSTORE_API_KEYS "
            "(comma separated) or bind to 127.0.0.1 with EMBEDSTORE_ALLOW_ANONYMOUS_LOOPBACK=true"
        )


def _is_remote(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an IP address (in-process test clients)
        return False


def check_api_key(settings: Settings, authorization: str, client_host: str | None) -> None:
    """Accept ``Authorization: Bearer KEY`` with a configured key, else raise ``Unauthorized``.

    Without configured keys, a loopback server answers loopback clients only."""
    keys = settings.api_key_list
    if not keys:
        if anonymous_allowed(settings) and not _is_remote(client_host):
            return
        raise Unauthorized("API key required: set EMBEDSTORE_API_KEYS on the server")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Missing API key: send 'Authorization: Bearer KEY'")
    given = token.encode()
    if not any(hmac.compare_digest(given, k.encode()) for k in keys):
        raise Unauthorized("Invalid API key")


async def require_api_key(request: Request) -> None:
    """Dependency: ``check_api_key`` on the request's header and client address.

    ``async`` although it awaits nothing: FastAPI runs a plain ``def`` dependency in the
    threadpool, a thread hop on every request for a few header comparisons."""
    client = request.client
    check_api_key(
        request.app.state.settings,
        request.headers.get("authorization", ""),
        client.host if client is not None else None,
    )


def confine_path(path: str, roots: list[Path], *, must_exist: bool = True) -> Path:
    """Resolve a server-side ``path`` and check that it lies inside one of ``roots``.

    Raises ``PathNotAllowed`` (403) for ``..`` components, for paths outside every root and for
    symlinks that lead out of a root, and ``NotFound`` (404) when the path does not exist.
    """
    if not roots:
        raise PathNotAllowed(
            "Server-side paths are disabled: configure allowed folders with EMBEDSTORE_ROOTS"
        )
    if "\x00" in path:
        raise PathNotAllowed(f"Path {path!r} contains a NUL byte")
    raw = Path(path).expanduser()
    if ".." in raw.parts:
        raise PathNotAllowed(f"Path {path!r} may not contain '..'")
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    for candidate in candidates:
        resolved = candidate.resolve(strict=False)
        root = next((r for r in roots if resolved.is_relative_to(r)), None)
        if root is None:
            continue
        if must_exist and not resolved.exists():
            raise NotFound(f"Path {path!r} does not exist")
        return resolved
    raise PathNotAllowed(f"Path {path!r} is outside the allowed roots")


def is_inside(path: Path, folders: list[Path]) -> bool:
    """True when the resolved ``path`` lies inside one of ``folders`` (symlinks followed)."""
    resolved = path.resolve(strict=False)
    return any(resolved.is_relative_to(f.resolve(strict=False)) for f in folders)


def check_encoder_name(name: str | None, settings: Settings) -> None:
    """Encoders a client may name over HTTP: registered names and bound encoders in the data folder.

    ``bound:NAME`` and ``bound:/path`` must resolve inside the server's data folder
    (``PathNotAllowed``, 403, otherwise); other prefix families take a model name, never a path.
    Unknown names raise ``UnknownEncoder`` (422).
    """
    if name is None:
        return
    from embedstore.encoders import get_encoder_info

    prefix, sep, rest = name.partition(":")
    if sep and prefix == "bound":
        from embedstore.bind.bound import bound_dir

        folder = bound_dir(rest, settings).resolve()
        if not folder.is_relative_to(settings.data_dir.expanduser().resolve()):
            raise PathNotAllowed(
                f"Encoder {name!r}: over HTTP a bound encoder must lie inside the data folder "
                "(<data_dir>/bound/NAME)",
                field="encoder",
            )
    elif sep and not MODEL_NAME.match(rest):
        raise PathNotAllowed(
            f"Encoder {name!r}: over HTTP, {prefix}: takes a model name, not a path",
            field="encoder",
        )
    get_encoder_info(name, settings)
