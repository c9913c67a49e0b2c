"""Shared fixtures: a real Ray head and a real MLflow server on 127.0.0.1, started by the tests.

Both are session-scoped and torn down at the end. Nothing here mocks Ray or
MLflow: the end-to-end tests submit jobs with `ray job submit` and read runs
back over HTTP.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHARED_LAS = ROOT.parent / "shared" / "data" / "las"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early ({proc.returncode}); log:\n{log.read_text() if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s" + (f"; log:\n{log.read_text()[-3000:]}" if log else ""))


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def env_base() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory, env_base):
    """A Ray head on 127.0.0.1 with the job server (dashboard); yields its job-submission address."""
    tmp = tmp_path_factory.mktemp("ray")
    port, dash = free_port(), free_port()
    # a short temp dir: Ray's unix sockets must fit in 107 characters
    ray_tmp = Path(f"/tmp/vr{os.getpid()}")
    cmd = [
        str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
        "--num-cpus=2", "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
        f"--temp-dir={ray_tmp}", "--disable-usage-stats",
    ]
    out = run(cmd, env=env_base, timeout=180)
    if out.returncode != 0:
        pytest.fail(f"ray start failed:\n{out.stdout}\n{out.stderr}")
    address = f"http://127.0.0.1:{dash}"
    try:
        wait_http(f"{address}/api/version", 120)
        yield {"address": address, "gcs": f"127.0.0.1:{port}", "tmp": tmp}
    finally:
        run([str(BIN / "ray"), "stop", "--force"], env=env_base, timeout=120)
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, env_base):
    """`mlflow server` on 127.0.0.1 with a sqlite store; yields its tracking URI."""
    tmp = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = tmp / "server.log"
    cmd = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
        "--artifacts-destination", str(tmp / "artifacts"), "--workers", "1",
    ]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env_base, cwd=tmp, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", 120, proc, log)
        yield uri
    finally:
        import signal

        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except Exception:
            proc.kill()


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """A tiny generated dataset shared by the training and inference tests."""
    from veernet_ray.synth import generate_dataset

    out = tmp_path_factory.mktemp("data") / "demo"
    manifest = generate_dataset(out, n=16, seed=3, preset="demo", workers=1, progress=False)
    return Path(manifest)
