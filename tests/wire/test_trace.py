"""The rollout trace's writer: off, it creates and writes nothing; on, each mark is one JSON line
with the hop, the process, its pid, the ConfigMap, revision and pod, and a ``time.monotonic_ns``
time (now, or the moment given); lines appended at once by several processes stay whole; and a
trace file that cannot be written any more ends the trace, not the caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hotconf_wire.trace import DISABLED, HOPS, Tracer


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_tracer_without_a_file_writes_nothing(tmp_path: Path) -> None:
    for tracer in (Tracer(None, proc="sidecar"), Tracer("", proc="sidecar"), DISABLED):
        assert tracer.enabled is False
        tracer.mark("sidecar.verified", cm="shop/web", rev="sha256:1")
    assert list(tmp_path.iterdir()) == []


def test_each_mark_is_one_json_line_with_a_monotonic_time(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    tracer = Tracer(path, proc="operator")
    before = time.monotonic_ns()
    tracer.mark("operator.validated", cm="shop/web", rev="sha256:1")
    tracer.mark("client.received", cm="shop/web", rev="sha256:1", pod="shop/web-0", at=12.5)
    after = time.monotonic_ns()
    tracer.close()
    first, second = lines(path)
    assert first == {
        "t": first["t"], "proc": "operator", "pid": os.getpid(), "hop": "operator.validated",
        "cm": "shop/web", "rev": "sha256:1", "pod": "",
    }  # fmt: skip
    assert isinstance(first["t"], int) and before <= first["t"] <= after
    assert second["t"] == 12_500_000_000 and second["pod"] == "shop/web-0"
    assert {"operator.validated", "client.received"} <= set(HOPS)


_APPEND = """
import sys
from hotconf_wire.trace import Tracer
tracer = Tracer(sys.argv[1], proc=sys.argv[2])
for i in range(2000):
    tracer.mark("sidecar.relayed", cm="shop/web", rev=f"sha256:{i}", pod="shop/" + "x" * 200)
tracer.close()
"""


def test_lines_of_several_processes_stay_whole(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    writers = [
        subprocess.Popen([sys.executable, "-c", _APPEND, str(path), f"p{i}"]) for i in range(3)
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0]
    got = lines(path)  # every line parses: no two writes interleaved
    assert len(got) == 6000
    assert {line["proc"] for line in got} == {"p0", "p1", "p2"}


def test_a_trace_file_that_fails_ends_the_trace_not_the_caller(tmp_path: Path) -> None:
    tracer = Tracer(tmp_path / "trace.jsonl", proc="sidecar")
    assert tracer._fd is not None
    os.close(tracer._fd)  # as a write error would: EBADF
    tracer.mark("sidecar.verified", cm="shop/web", rev="sha256:1")
    assert tracer.enabled is False
    tracer.mark("sidecar.verified", cm="shop/web", rev="sha256:1")  # still a no-op
