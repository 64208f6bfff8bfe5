"""Helpers for tests of the injection webhook served by the real ``hotconf-operator``.

:func:`running_operator` starts the operator on the test control plane, as the chart's
ServiceAccount, with its webhook on a free port and a self-signed certificate; :class:`Webhook`
posts AdmissionReviews to it over HTTPS and applies the returned JSON patch. Used by
``tests/operator/test_webhook_admission.py``, ``tests/operator/test_injection_misses.py`` and
``tests/packaging/test_helm_test_pod.py``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kube_control_plane import ControlPlane

from hotconf_e2e import Api, OperatorProcess, free_port, make_key
from hotconf_e2e.chart import ChartRelease


def self_signed(directory: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory / "tls.crt"


def review(pod: dict[str, Any], uid: str = "r-1", dry_run: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:shop:deployer"},
            "object": pod,
            "oldObject": None,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def make_pod(
    annotations: dict[str, str], *, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "labels": labels or {},
            "annotations": annotations,
        },
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }


class Webhook:
    def __init__(self, url: str, cafile: Path) -> None:
        self.url = url
        self.context = ssl.create_default_context(cafile=str(cafile))

    def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}

    def admit(
        self, pod: dict[str, Any], *, dry_run: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a review; return the AdmissionReview response and the pod after its patch."""
        status, answer = self.post(json.dumps(review(pod, dry_run=dry_run)).encode())
        assert status == 200
        response = answer["response"]
        assert response["uid"] == "r-1"
        assert response["allowed"] is True
        patched = pod
        if "patch" in response:
            assert response["patchType"] == "JSONPatch"
            ops = json.loads(base64.b64decode(response["patch"]))
            patched = jsonpatch.apply_patch(pod, ops)
        return response, patched


class Operator:
    """A running hotconf-operator with its webhook, and what a test needs to talk to it."""

    def __init__(
        self, process: OperatorProcess, hook: Webhook, public_key_pem: str, api: Api
    ) -> None:
        self.process = process
        self.hook = hook
        self.public_key_pem = public_key_pem
        self.api = api

    def metric(self, name: str) -> float:
        for line in self.process.metrics().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"metric {name} not served")


@contextlib.contextmanager
def running_operator(
    workdir: Path,
    *extra: str,
    control_plane: ControlPlane,
    release: ChartRelease,
    namespace: str | None = None,
) -> Iterator[Operator]:
    """The real operator on the control plane, as ``release``'s ServiceAccount, serving its
    webhook with a self-signed certificate; ``Operator.api`` is the admin in ``namespace`` (a
    new one if not given)."""
    (workdir / "tls").mkdir()
    cafile = self_signed(workdir / "tls")
    key_file = workdir / "signing.pem"
    public_key_pem = make_key(key_file)
    port = free_port()
    namespace = namespace or control_plane.create_namespace(prefix="webhook")
    kubeconfig = release.operator_kubeconfig(workdir / "operator.kubeconfig", namespace=namespace)
    process = OperatorProcess(
        kubeconfig=kubeconfig,
        key_file=key_file,
        workdir=workdir,
        extra=(
            "--webhook-port", str(port),
            "--webhook-cert-dir", str(workdir / "tls"),
            *extra,
        ),
    ).start()  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.proc is not None and process.proc.poll() is None, process.logs()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no webhook on {port}:\n{process.logs()}") from None
                time.sleep(0.1)
        hook = Webhook(f"https://127.0.0.1:{port}/inject-sidecar", cafile)
        yield Operator(process, hook, public_key_pem, Api(control_plane.admin, namespace))
    finally:
        code = process.stop()
    assert code == 0, process.logs()[-4000:]
