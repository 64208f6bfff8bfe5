"""A small Kubernetes API client for the few writes and reads kopf does not do for hotconf.

kopf watches and posts Events; hotconf itself needs to merge-patch one annotation on a
ConfigMap (``_status``), read or create the signing-key Secret (``_signing``), read, create or
replace the webhook certificate Secret and patch the webhook configuration's caBundle
(``_webhook_tls``), read a schema ConfigMap (``_validation``) and keep each ConfigMap's revision
history in ControllerRevisions (``_history_store``). Credentials come from
:func:`login`, which kopf's own login handler calls too, so both authenticate alike; the
``status`` CLI does not use this client.

Credentials rotate: a projected ServiceAccount token is rewritten by the kubelet, a kubeconfig's
``tokenFile`` or exec plugin hands out new tokens. kopf calls its login handler again after a 401,
and :class:`KubeApi` does the same: on a 401 it logs in again (re-reading the token) and retries
the request once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import kopf

from hotconf_operator._errors import KubeApiError

__all__ = ["FIELD_MANAGER", "KubeApi", "login"]

#: The field manager of the operator's writes (``managedFields``).
FIELD_MANAGER = "hotconf-operator"

_logger = logging.getLogger("hotconf_operator.kubeapi")
#: Ask a list for its objects' metadata only (what ``kubectl get`` asks for tables).
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def login() -> kopf.ConnectionInfo:
    """Fresh credentials, read again on every call: the in-cluster service account first (its
    projected token file), then ``$KUBECONFIG`` through the official ``kubernetes`` client's
    loader, which implements kubeconfig fully (``tokenFile``, exec credential plugins, client
    certificates; kopf's own kubeconfig reader knows only inline tokens and certificates), then
    kopf's reader when that client is not installed."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings)
    if info is None:
        try:
            info = kopf.login_via_client(settings=settings, logger=_logger)
        except kopf.LoginError:
            info = None
    if info is None:
        try:
            info = kopf.login_with_kubeconfig(settings=settings)
        except OSError as exc:  # $KUBECONFIG names a file that is not there, or unreadable
            raise KubeApiError(
                f"no Kubernetes credentials: cannot read the kubeconfig {exc.filename}: "
                f"{exc.strerror}; set KUBECONFIG to a readable file, or run in a cluster"
            ) from exc
    if info is None:
        raise KubeApiError("no Kubernetes credentials: not in a cluster and no usable kubeconfig")
    return info


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if not info.server.startswith("https"):
        return False
    if info.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif info.ca_path:
        ctx = ssl.create_default_context(cafile=str(info.ca_path))
    elif info.ca_data:
        data = _as_bytes(info.ca_data)
        try:  # kubeconfigs carry it base64-encoded; kopf passes it through as given
            data = base64.b64decode(data, validate=True)
        except ValueError:
            pass
        ctx = ssl.create_default_context(cadata=data.decode())
    else:
        ctx = ssl.create_default_context()
    cert, key = info.certificate_path, info.private_key_path
    with tempfile.TemporaryDirectory() as tmp:
        if info.certificate_data:
            cert = Path(tmp, "cert.pem")
            cert.write_bytes(base64.b64decode(_as_bytes(info.certificate_data)))
        if info.private_key_data:
            key = Path(tmp, "key.pem")
            key.write_bytes(base64.b64decode(_as_bytes(info.private_key_data)))
        if cert:
            ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


class KubeApi:
    """An aiohttp session bound to one API server and one identity. Use ``async with``."""

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        *,
        timeout: float = 10.0,
        relogin: Callable[[], kopf.ConnectionInfo] | None = None,
    ) -> None:
        """``relogin``: called for new credentials after a 401 (usually :func:`login`)."""
        self._relogin = relogin
        self._timeout = timeout
        self._retired: list[aiohttp.ClientSession] = []
        self._session = self._open(info)

    def _open(self, info: kopf.ConnectionInfo) -> aiohttp.ClientSession:
        self._info = info
        self._base = info.server.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "hotconf-operator"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = None
        if info.username and info.password:
            auth = aiohttp.BasicAuth(info.username, info.password)
        return aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            connector=aiohttp.TCPConnector(ssl=_ssl_context(info)),
        )

    async def __aenter__(self) -> KubeApi:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for session in [*self._retired, self._session]:
            await session.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "",
    ) -> Any:
        session = self._session
        try:
            return await self._request_once(
                method, path, body=body, content_type=content_type, accept=accept
            )
        except KubeApiError as exc:
            if exc.status != 401 or self._relogin is None:
                raise
        # The token expired or was rotated: log in again (re-reading it), retry once. Several
        # requests may meet the same 401: only the first replaces the session. The login reads
        # files and may run an exec plugin, so it runs off the event loop. The old session is
        # closed only with this client: requests still in flight on it must not be cut off (they
        # meet the 401 themselves and retry on the new one).
        if self._session is session:
            _logger.info("the API answered 401 Unauthorized; logging in again")
            info = await asyncio.to_thread(self._relogin)
            if self._session is session:
                self._session = self._open(info)
                self._retired.append(session)
        return await self._request_once(
            method, path, body=body, content_type=content_type, accept=accept
        )

    async def _request_once(
        self, method: str, path: str, *, body: Any, content_type: str, accept: str = ""
    ) -> Any:
        url = self._base + path
        # Compact: a ControllerRevision's data is immutable and compared byte for byte, and the
        # API server compacts it when it applies a later patch to the record.
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        if accept:
            headers["Accept"] = accept
        try:
            async with self._session.request(method, url, data=data, headers=headers) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    try:
                        message = json.loads(text).get("message", text)
                    except (ValueError, AttributeError):
                        message = text
                    raise KubeApiError(
                        f"{method} {path}: HTTP {resp.status}: {str(message)[:300]}",
                        status=resp.status,
                    )
                return json.loads(text) if text else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeApiError(f"{method} {path}: {exc!r}") from exc

    @staticmethod
    def _cm_path(namespace: str, name: str = "") -> str:
        path = f"/api/v1/namespaces/{quote(namespace)}/configmaps"
        return f"{path}/{quote(name)}" if name else path

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", self._cm_path(namespace, name))
        return result

    async def annotate_configmap(
        self, namespace: str, name: str, annotations: dict[str, str]
    ) -> None:
        """Merge-patch annotations only: nothing else of the ConfigMap is touched. The field
        manager is named, not derived from the User-Agent, so that ``managedFields`` (and
        server-side apply by GitOps tools) see one stable owner of these annotations."""
        await self._request(
            "PATCH",
            self._cm_path(namespace, name) + "?" + urlencode({"fieldManager": FIELD_MANAGER}),
            body={"metadata": {"annotations": annotations}},
            content_type="application/merge-patch+json",
        )

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        """POST a ``v1`` Event (what kopf posts from its handlers, for code outside them)."""
        await self._request("POST", f"/api/v1/namespaces/{quote(namespace)}/events", body=event)

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self._request(
                "GET", f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}"
            )
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def create_secret(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        # No app.kubernetes.io/instance label: Argo CD tracks (and prunes) objects by it, and
        # the operator's Secrets are no part of the rendered chart.
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": "hotconf"},
            },
            "type": "Opaque",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        await self.create_secret_object(namespace, body)

    async def create_secret_object(self, namespace: str, body: dict[str, Any]) -> None:
        await self._request(
            "POST",
            f"/api/v1/namespaces/{quote(namespace)}/secrets?"
            + urlencode({"fieldManager": FIELD_MANAGER}),
            body=body,
        )

    async def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """PUT, with the body's resourceVersion: a 409 when someone wrote it meanwhile."""
        await self._request(
            "PUT",
            f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}?"
            + urlencode({"fieldManager": FIELD_MANAGER}),
            body=body,
        )

    _MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"

    async def get_webhook_configuration(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", f"{self._MWC}/{quote(name)}")
        return result

    async def patch_webhook_configuration(self, name: str, patch: dict[str, Any]) -> None:
        """A strategic merge patch: ``webhooks`` merge by name, other fields are left alone."""
        await self._request(
            "PATCH",
            f"{self._MWC}/{quote(name)}?" + urlencode({"fieldManager": FIELD_MANAGER}),
            body=patch,
            content_type="application/strategic-merge-patch+json",
        )

    @staticmethod
    def _cr_path(namespace: str, name: str = "") -> str:
        path = f"/apis/apps/v1/namespaces/{quote(namespace)}/controllerrevisions"
        return f"{path}/{quote(name)}" if name else path

    async def list_controller_revisions(
        self, namespace: str, *, label_selector: str, name: str = "", metadata_only: bool = False
    ) -> list[dict[str, Any]]:
        """The ControllerRevisions of ``namespace`` that match ``label_selector`` (and are named
        ``name``, if given). ``metadata_only``: their metadata alone (a
        PartialObjectMetadataList), not the data: a history of big ConfigMaps is megabytes."""
        query = {"labelSelector": label_selector}
        if name:
            query["fieldSelector"] = f"metadata.name={name}"
        result = await self._request(
            "GET",
            self._cr_path(namespace) + "?" + urlencode(query),
            accept=_METADATA_LIST if metadata_only else "",
        )
        return list((result or {}).get("items") or [])

    async def create_controller_revision(self, namespace: str, body: dict[str, Any]) -> None:
        await self._request(
            "POST",
            self._cr_path(namespace) + "?" + urlencode({"fieldManager": FIELD_MANAGER}),
            body=body,
        )

    async def patch_controller_revision(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """A merge patch (its annotations, its number: ``.data`` is immutable)."""
        await self._request(
            "PATCH",
            self._cr_path(namespace, name) + "?" + urlencode({"fieldManager": FIELD_MANAGER}),
            body=patch,
            content_type="application/merge-patch+json",
        )

    async def delete_controller_revision(self, namespace: str, name: str) -> None:
        await self._request("DELETE", self._cr_path(namespace, name))
