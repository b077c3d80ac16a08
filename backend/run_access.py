"""Who may start and watch live runs: the one place that decides (no web package imported).

Runs execute a model on the server's machine, so they are refused unless either
- the server listens on a loopback address, the client connects from loopback and the request's
  Host header is a loopback name (a web page elsewhere cannot reach it through DNS rebinding), or
- the server was started with ``--allow-runs`` and a token, which every request sends as the
  header ``X-Spectra-Token`` (compared in constant time, ``hmac.compare_digest``).
Every refusal is ``Forbidden`` (403) with a one-line reason.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from spectra_vis.errors import Forbidden, InvalidArgument

TOKEN_HEADER = "X-Spectra-Token"
TOKEN_ENV = "SPECTRA_VIS_RUN_TOKEN"


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or a name) is this machine's loopback."""
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name == "localhost" or name.endswith(".localhost")


def host_name(header: str | None) -> str:
    """The host of a Host header, without its port (``[::1]:8000`` -> ``::1``)."""
    value = (header or "").strip()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@dataclass(frozen=True)
class RunAccess:
    listen_host: str = "127.0.0.1"
    allow_runs: bool = False
    token: str | None = None

    def __post_init__(self) -> None:
        if self.allow_runs and not self.token:
            raise InvalidArgument(f"--allow-runs needs a token: --run-token T or the environment variable {TOKEN_ENV}")

    def check(self, client_host: str | None, host_header: str | None, token: str | None) -> None:
        """Return when this request may use the runs; else Forbidden, saying why and what to do."""
        if self.allow_runs:
            assert self.token is not None
            if not token:
                raise Forbidden(f"runs need the header {TOKEN_HEADER} (the token the server was started with)")
            if not hmac.compare_digest(token.encode("utf-8"), self.token.encode("utf-8")):
                raise Forbidden(f"wrong {TOKEN_HEADER}: runs refused")
            return
        if not is_loopback(self.listen_host):
            raise Forbidden(
                f"runs are off: the server listens on {self.listen_host}, not a loopback address "
                f"(start it with --allow-runs --run-token T to allow them with a token)"
            )
        if not is_loopback(client_host):
            raise Forbidden("runs are only for clients on this machine (loopback) unless the server has --allow-runs")
        if not is_loopback(host_name(host_header)):
            raise Forbidden(
                f"runs refused: the Host header {host_header!r} is not a loopback name (DNS rebinding guard); "
                "open the viewer at http://127.0.0.1:PORT"
            )
