"""The injection webhook answers real AdmissionReview requests over HTTPS from kopf's webhook
server: an annotated pod comes back with a JSON patch that injects the sidecar, an injected pod and
an unannotated pod come back allowed with no patch, and malformed reviews never inject anything
and leave the server serving."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import socket
import ssl
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonpatch
import kopf.testing
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

OPERATOR = textwrap.dedent(
    """
    import os
    from pathlib import Path

    import kopf

    from hotconf_operator._injection import InjectionSettings
    from hotconf_operator._webhook import register, webhook_server

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_):
        settings.admission.server = webhook_server(
            port=int(os.environ["TEST_WEBHOOK_PORT"]), cert_dir=Path(os.environ["TEST_CERT_DIR"])
        )
        settings.admission.managed = None

    @kopf.on.login()
    def login(**kwargs):
        return kopf.login_with_kubeconfig(**kwargs)

    register(
        kopf.get_default_registry(),
        InjectionSettings(image="registry.example/hotconf:1", public_key_pem="PEM"),
    )
    """
)


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def review(pod: dict[str, Any], uid: str = "r-1") -> dict[str, Any]:
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
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def make_pod(annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "annotations": annotations},
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

    def admit(self, pod: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a review; return the AdmissionReview response and the pod after its patch."""
        status, answer = self.post(json.dumps(review(pod)).encode())
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


@pytest.fixture
def webhook(tmp_path: Path, kube_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    cafile = self_signed(tmp_path)
    port = free_port()
    monkeypatch.setenv("TEST_WEBHOOK_PORT", str(port))
    monkeypatch.setenv("TEST_CERT_DIR", str(tmp_path))
    script = tmp_path / "operator.py"
    script.write_text(OPERATOR)
    args = ["run", "--standalone", "--all-namespaces", str(script)]
    with kopf.testing.KopfRunner(args, timeout=60) as runner:
        hook = Webhook(f"https://127.0.0.1:{port}/inject-sidecar", cafile)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield hook
    assert runner.exit_code == 0, runner.output


def test_annotated_pod_is_injected_and_injection_is_idempotent(webhook: Webhook) -> None:
    pod = make_pod({"hotconf.dev/inject": "true", "hotconf.dev/configmaps": "web-config"})
    _, injected = webhook.admit(pod)
    assert [c["name"] for c in injected["spec"]["initContainers"]] == ["hotconf-sidecar"]
    assert injected["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    app_env = injected["spec"]["containers"][0]["env"]
    assert {"name": "HOTCONF_SOCKET", "value": "/run/hotconf/hotconf.sock"} in app_env

    response, again = webhook.admit(injected)
    assert "patch" not in response
    assert again == injected


def test_unannotated_pod_is_untouched(webhook: Webhook) -> None:
    pod = make_pod({"hotconf.dev/configmaps": "web-config"})
    response, same = webhook.admit(pod)
    assert "patch" not in response
    assert same == pod


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"kind": "AdmissionReview"}', json.dumps({"request": {}}).encode()],
)
def test_malformed_reviews_never_inject(webhook: Webhook, body: bytes) -> None:
    status, answer = webhook.post(body)
    assert "patch" not in answer.get("response", {})
    # kopf answers 400 for what is not JSON and 500 for JSON that is not a review; either way the
    # API server, with failurePolicy Ignore, creates the pod as it was: nothing is injected.
    assert status in (400, 500), (status, answer)
    # The server still answers a good review afterwards.
    _, injected = webhook.admit(make_pod({"hotconf.dev/inject": "true"}))
    assert injected["spec"]["initContainers"][0]["name"] == "hotconf-sidecar"
