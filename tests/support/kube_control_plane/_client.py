"""Plain HTTPS to the test control plane as one identity (admin certificate or a bearer token).

Small on purpose: the fixtures and the end-to-end harness create namespaces, pods, tokens and
pod status with it, and read what the operator wrote. Errors are :class:`ApiError` with the
HTTP status and the server's ``Status`` message.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["AdminClient", "ApiError"]


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, message: str, *, status: int, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class AdminClient:
    """JSON over HTTPS to ``url``; authenticated by a client certificate or a token (or plain
    HTTP without ``ca_cert``, for the emulator)."""

    def __init__(
        self,
        url: str,
        *,
        ca_cert: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = token
        # No CA: plain HTTP (the emulator, which the benchmark still measures).
        self._ssl = ssl.create_default_context(cafile=str(ca_cert)) if ca_cert else None
        if self._ssl is not None and client_cert is not None:
            self._ssl.load_cert_chain(str(client_cert), str(client_key) if client_key else None)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                status = json.loads(text)
                message, reason = status.get("message", text), status.get("reason", "")
            except ValueError:
                message, reason = text, ""
            raise ApiError(
                f"{method} {path}: HTTP {exc.code}: {message}", status=exc.code, reason=reason
            ) from None
        if raw:
            return payload
        return json.loads(payload) if payload else None

    def ok(self, path: str) -> bool:
        """True if GET ``path`` answers 2xx (``/readyz``, ``/livez``)."""
        try:
            self.request("GET", path, raw=True)
        except (ApiError, OSError):
            return False
        return True
