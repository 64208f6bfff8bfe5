"""`hotconf status` (the client CLI, with the operator extra's plugin) and `kubectl-hotconf`
read the same hotconf.dev/status annotations from the API and print them as a table or JSON.

They find the cluster as kubectl does: `--kubeconfig`, else `$KUBECONFIG`; `--context` picks a
context; the namespace is `-n`, else the context's, else `default`; `-A` is every namespace.
Credentials include exec plugins (the plugin really runs, and its token is what the API server
receives). Every failure is one clear line on stderr and exit status 1: an unreadable
kubeconfig, an unknown context, a failing exec plugin (named, with its stderr), 401 and 403
(naming the namespace and resource), an unreachable API; no token is ever printed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from kube_emulator import EmulatorProcess, EmulatorServer, KubeEmulator

BIN = Path(sys.executable).parent

MANIFEST = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: default
  labels: {"hotconf.dev/enabled": "true"}
  annotations:
    hotconf.dev/status: '{"revision": "sha256:0123456789abcdef", "phase": "halted", "applied": 1,
      "rejected": 1, "pending": 0, "total": 2, "pod": "default/web-2",
      "message": "port must be an integer", "time": "2026-01-01T00:00:00Z"}'
data: {"app.yaml": "port: x"}
"""

# Three namespaces, one enabled ConfigMap in each, and one ConfigMap hotconf does not follow.
TEAMS = """
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a-config, namespace: team-a, labels: {"hotconf.dev/enabled": "true"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b-config, namespace: team-b, labels: {"hotconf.dev/enabled": "true"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: d-config, namespace: default, labels: {"hotconf.dev/enabled": "true"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-followed, namespace: team-a}
"""

SECRET = "s3cr3t-token-do-not-print"
EXEC_TOKEN = "exec-plugin-token-4711"
COMMANDS = [["hotconf", "status"], ["kubectl-hotconf", "status"]]


def run(
    command: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), *args],
        capture_output=True,
        text=True,
        env={**_clean_environ(), **(env or {})},
        timeout=60,
        check=False,
    )


def _clean_environ() -> dict[str, str]:
    """This process's environment without a kubeconfig or a pod's service account."""
    drop = {"KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def write_kubeconfig(
    path: Path,
    url: str,
    *,
    contexts: dict[str, str | None],
    current: str,
    user: dict[str, Any] | None = None,
) -> Path:
    """A kubeconfig with one cluster at ``url``, one user, and ``contexts`` {name: namespace}."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "someone", "user": user if user is not None else {"token": SECRET}}],
        "contexts": [
            {
                "name": name,
                "context": {
                    "cluster": "emulator",
                    "user": "someone",
                    **({"namespace": ns} if ns else {}),
                },
            }
            for name, ns in contexts.items()
        ],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def exec_user(plugin: Path, *args: str) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "args": list(args),
            "interactiveMode": "Never",
        }
    }


def write_plugin(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def names(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [f"{row['namespace']}/{row['name']}" for row in json.loads(result.stdout)]


def assert_clear_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("hotconf status: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one line, no traceback
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert EXEC_TOKEN not in result.stderr + result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_status_shows_what_the_operator_wrote(
    command: list[str], kubectl: object, kube_env: dict[str, str]
) -> None:
    kubectl("apply", "--validate=false", "-f", "-", input=MANIFEST)  # type: ignore[operator]
    table = run(*command, env=kube_env)
    assert table.returncode == 0, table.stderr
    [header, row] = table.stdout.strip().splitlines()
    assert header.split()[:3] == ["NAMESPACE", "NAME", "REVISION"]
    assert row.split()[:4] == ["default", "web-config", "0123456789ab", "halted"]
    assert "port must be an integer" in row

    as_json = run(*command, "-n", "default", "-o", "json", "web-config", env=kube_env)
    assert as_json.returncode == 0, as_json.stderr
    [item] = json.loads(as_json.stdout)
    assert (item["applied"], item["rejected"], item["total"]) == (1, 1, 2)
    assert item["pod"] == "default/web-2"


@pytest.fixture
def teams(kube_emulator_process: EmulatorProcess, kubectl: Any, tmp_path: Path) -> Path:
    """The emulator holding TEAMS; a kubeconfig whose contexts default to different namespaces:
    alpha (current) team-a, beta team-b, gamma none (so: default)."""
    kubectl("apply", "--validate=false", "-f", "-", input=TEAMS)
    return write_kubeconfig(
        tmp_path / "teams.yaml",
        kube_emulator_process.url,
        contexts={"alpha": "team-a", "beta": "team-b", "gamma": None},
        current="alpha",
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param([], ["team-a/a-config"], id="current-context-namespace"),
        pytest.param(["--context", "beta"], ["team-b/b-config"], id="context-namespace"),
        pytest.param(["--context", "gamma"], ["default/d-config"], id="no-namespace-is-default"),
        pytest.param(["-n", "team-b"], ["team-b/b-config"], id="n"),
        pytest.param(["--namespace=default"], ["default/d-config"], id="namespace"),
        pytest.param(["--context", "beta", "-n", "team-a"], ["team-a/a-config"], id="n-wins"),
        pytest.param(["--context", "beta", "b-config"], ["team-b/b-config"], id="by-name"),
        pytest.param(["-n", "team-a", "a-config"], ["team-a/a-config"], id="by-name-n"),
        pytest.param(["-A"], ["default/d-config", "team-a/a-config", "team-b/b-config"], id="A"),
        pytest.param(
            ["--all-namespaces", "-n", "team-b"],
            ["default/d-config", "team-a/a-config", "team-b/b-config"],
            id="all-namespaces-wins-over-n",
        ),
    ],
)
def test_namespace_and_context_are_chosen_as_kubectl_does(
    teams: Path, args: list[str], expected: list[str]
) -> None:
    # --kubeconfig wins over $KUBECONFIG, which points at nothing usable here.
    env = {"KUBECONFIG": str(teams.parent / "missing.yaml")}
    assert (
        names(
            run(
                "kubectl-hotconf",
                "status",
                "--kubeconfig",
                str(teams),
                *args,
                "-o",
                "json",
                env=env,
            )
        )
        == expected
    )


def test_kubeconfig_from_the_environment_merges_its_paths(teams: Path) -> None:
    env = {"KUBECONFIG": os.pathsep.join([str(teams.parent / "missing.yaml"), str(teams)])}
    assert names(run("hotconf", "status", "-o", "json", env=env)) == ["team-a/a-config"]
    assert names(run("hotconf", "status", "--context", "beta", "-o", "json", env=env)) == [
        "team-b/b-config"
    ]


def test_context_flag_needs_no_current_context(teams: Path) -> None:
    config = yaml.safe_load(teams.read_text())
    del config["current-context"]
    teams.write_text(yaml.safe_dump(config))
    result = run("hotconf", "status", "--kubeconfig", str(teams), "--context", "beta", "-o", "json")
    assert names(result) == ["team-b/b-config"]
    assert_clear_error(run("hotconf", "status", "--kubeconfig", str(teams)), "--context NAME")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_option(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    for option in (
        "-n",
        "--namespace",
        "-A",
        "--all-namespaces",
        "-o",
        "--output",
        "--kubeconfig",
        "--context",
        "--request-timeout",
        "CONFIGMAP",
    ):
        assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", result.stdout), option


def test_a_name_across_all_namespaces_is_a_usage_error(teams: Path) -> None:
    result = run("hotconf", "status", "--kubeconfig", str(teams), "-A", "a-config")
    assert result.returncode == 2
    assert "across all namespaces" in result.stderr


def test_unknown_context_is_a_clear_error(teams: Path) -> None:
    result = run("hotconf", "status", "--kubeconfig", str(teams), "--context", "prod")
    assert_clear_error(result, "'prod'", "alpha", "beta", str(teams))


@pytest.mark.parametrize(
    "kind", ["missing", "directory", "not-yaml", "not-a-kubeconfig", "no-current-context"]
)
def test_unusable_kubeconfig_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "kubeconfig"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-yaml":  # the broken line holds a token: it must not be echoed
        path.write_text(f"users:\n- name: u\n  user: {{token: {SECRET}\n   : [\n")
    elif kind == "not-a-kubeconfig":
        path.write_text("just: a mapping\n")
    elif kind == "no-current-context":
        write_kubeconfig(path, "http://127.0.0.1:9", contexts={"c": None}, current="")
    result = run("hotconf", "status", "--kubeconfig", str(path))
    assert_clear_error(result, str(path))


def test_no_kubeconfig_at_all_is_a_clear_error(tmp_path: Path) -> None:
    result = run("hotconf", "status", env={"HOME": str(tmp_path)})
    assert_clear_error(result, "no Kubernetes credentials", "--kubeconfig")


@pytest.mark.skipif(
    Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists(),
    reason="this machine is a pod: the service account would be used for real",
)
def test_without_kubeconfig_in_a_pod_the_service_account_is_used(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    result = run("hotconf", "status", env={**env, "KUBERNETES_SERVICE_PORT": "443"})
    assert_clear_error(result, "in-cluster service account")


def test_unreachable_api_is_a_clear_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        f"users: [{{name: u, user: {{token: {SECRET}}}}}]\n"
    )
    result = run("hotconf", "status", env={"KUBECONFIG": str(kubeconfig)})
    assert_clear_error(result, "cannot reach", "http://127.0.0.1:9", "namespace 'default'")


PLUGIN = f"""
import json, os, sys
from pathlib import Path
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
Path(sys.argv[1]).write_text(json.dumps(info))  # the marker: proof that the plugin ran
print(json.dumps({{
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {{"token": {EXEC_TOKEN!r}}},
}}))
"""


async def run_async(*args: str) -> subprocess.CompletedProcess[str]:
    """``run`` without blocking the event loop that serves the in-process emulator."""
    process = await asyncio.create_subprocess_exec(
        str(BIN / "hotconf"),
        "status",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_clean_environ(),
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


async def test_exec_plugin_runs_and_its_token_reaches_the_api_server(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "get-token", PLUGIN)
    marker = tmp_path / "plugin-ran.json"
    async with EmulatorServer(emulator=KubeEmulator(history=20)) as server:
        kubeconfig = write_kubeconfig(
            tmp_path / "kubeconfig",
            server.url,
            contexts={"eks": "default"},
            current="eks",
            user=exec_user(plugin, str(marker)),
        )
        result = await run_async("--kubeconfig", str(kubeconfig), "-o", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == []
        [request] = [r for r in server.emulator.recent_requests if "configmaps" in str(r.url)]
        assert request.headers.get("Authorization") == f"Bearer {EXEC_TOKEN}"
    assert json.loads(marker.read_text())["kind"] == "ExecCredential"
    assert EXEC_TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize("failure", ["exits-1", "not-found", "bad-output"])
def test_failing_exec_plugin_is_a_clear_error(
    kube_emulator_process: EmulatorProcess, tmp_path: Path, failure: str
) -> None:
    if failure == "exits-1":
        plugin = write_plugin(
            tmp_path / "aws-sso",
            "import sys\nprint('error: the SSO session has expired; run aws sso login',"
            " file=sys.stderr)\nsys.exit(1)\n",
        )
        needles = ["aws-sso", "the SSO session has expired; run aws sso login"]
    elif failure == "not-found":
        plugin = tmp_path / "gke-gcloud-auth-plugin"
        needles = ["gke-gcloud-auth-plugin"]
    else:
        plugin = write_plugin(tmp_path / "kubelogin", f"print('token: {EXEC_TOKEN}')\n")
        needles = ["kubelogin"]
    user = exec_user(plugin)
    if failure == "not-found":
        user["exec"]["installHint"] = "Install it with:\n  gcloud components install it"
        needles.append("Install it with: gcloud components install it")
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig",
        kube_emulator_process.url,
        contexts={"cloud": None},
        current="cloud",
        user=user,
    )
    result = run("kubectl-hotconf", "status", "--kubeconfig", str(kubeconfig))
    assert_clear_error(result, "exec credential plugin", "user 'someone'", "'cloud'", *needles)


STATUS_403 = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "reason": "Forbidden",
    "code": 403,
    "message": 'configmaps is forbidden: User "bob" cannot list resource "configmaps"',
}
STATUS_401 = {**STATUS_403, "reason": "Unauthorized", "code": 401, "message": "Unauthorized"}


@pytest.mark.parametrize(
    ("args", "path", "answer", "needles"),
    [
        pytest.param(
            ["-n", "locked"],
            r"/api/v1/namespaces/locked/configmaps",
            (403, STATUS_403),
            [
                "forbidden",
                "HTTP 403",
                "list configmaps in namespace 'locked'",
                'User "bob" cannot list',
            ],
            id="403-namespace",
        ),
        pytest.param(
            ["-A"],
            r"/api/v1/configmaps",
            (403, STATUS_403),
            ["HTTP 403", "list configmaps in all namespaces"],
            id="403-all-namespaces",
        ),
        pytest.param(
            ["-n", "shop", "web"],
            r"/api/v1/namespaces/shop/configmaps/web",
            (403, STATUS_403),
            ["HTTP 403", "get configmap 'web' in namespace 'shop'"],
            id="403-one-configmap",
        ),
        pytest.param(
            [],
            r"/api/v1/namespaces/default/configmaps",
            (401, STATUS_401),
            ["HTTP 401", "credentials", "list configmaps in namespace 'default'", "Log in"],
            id="401",
        ),
    ],
)
async def test_refused_requests_name_what_was_refused(
    tmp_path: Path, args: list[str], path: str, answer: tuple[int, Any], needles: list[str]
) -> None:
    async with EmulatorServer() as server:
        status, body = answer
        (
            server.emulator[kmock.method.GET, re.compile(re.escape(path) + r"(\?.*)?")]
            << status
            << body
        )
        kubeconfig = write_kubeconfig(
            tmp_path / "kubeconfig", server.url, contexts={"c": None}, current="c"
        )
        result = await run_async("--kubeconfig", str(kubeconfig), *args)
    assert_clear_error(result, "context 'c'", *needles)
