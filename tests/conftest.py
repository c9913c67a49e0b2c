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
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from veernet_ray.raycluster import kill_cluster

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
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # e.g. 401 from a token-protected dashboard: the server is up
                return
            time.sleep(0.5)
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s" + (f"; log:\n{log.read_text()[-3000:]}" if log else ""))


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONUNBUFFERED"] = "1"
    # Ray 2.60 turns token auth on for new clusters once a token exists; the head and
    # every client (ray job submit, drivers) must agree, so the tests say it explicitly.
    env["RAY_AUTH_MODE"] = "token"
    return env


@pytest.fixture(scope="session")
def env_base() -> dict[str, str]:
    return _env()


class _Head:
    """The session's Ray head on 127.0.0.1 with the job server (dashboard).

    Starting one and waiting for its job agent takes one to three minutes on two cores, nearly
    all of it waiting. So it starts in a thread as soon as collection shows a test will use it
    (`pytest_collection_finish`), while the unit tests run, and `ray_head` waits for it.
    """

    def __init__(self) -> None:
        # a short temp dir: Ray's unix sockets must fit in 107 characters
        self.ray_tmp = Path(f"/tmp/vr{os.getpid()}")
        self.port, self.dash = free_port(), free_port()
        self.error: str | None = None
        self.stopped = False
        self.thread = threading.Thread(target=self._start, name="ray-head", daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dash}"

    def _start(self) -> None:
        env = _env()
        cmd = [
            str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
            "--num-cpus=2", "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dash}",
            # the job agent's own port: the default 52365 may be held by another Ray on the machine
            f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
            f"--temp-dir={self.ray_tmp}", "--disable-usage-stats",
        ]
        try:
            # with token auth `ray start` needs a token and, unlike ray.init, never makes one: on a
            # machine that has never run Ray there is none yet (made once, in ~/.ray, as ray.init does)
            made = run([str(BIN / "ray"), "get-auth-token", "--generate"], env=env, timeout=60)
            if made.returncode != 0:
                self.error = f"ray get-auth-token --generate failed:\n{made.stderr}"
                return
            out = run(cmd, env=env, timeout=180)
            if out.returncode != 0:
                self.error = f"ray start failed:\n{out.stdout}\n{out.stderr}"
                return
            wait_http(f"{self.address}/api/version", 120)
            _wait_job_agent(self.address, env, self.ray_tmp)
        except Exception as exc:  # reported by the fixture, in the test that needs the head
            self.error = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        if self.stopped:
            return
        self.thread.join()
        self.stopped = True
        _stop_cluster(self.ray_tmp)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


_HEAD: list[_Head] = []


def _head() -> _Head:
    if not _HEAD:
        _HEAD.append(_Head())
    return _HEAD[0]


def pytest_collection_finish(session) -> None:
    """Start the shared Ray head early when a collected test uses this file's `ray_head`.

    Not in a pytest-xdist worker: every worker collects every test. There the modules that use the
    head and the MLflow server run on one worker, first (`pytest_xdist_make_scheduler`), and the
    first of them starts it while the other worker runs other tests.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if any(uses(item, "ray_head") for item in session.items):
        _head()


def uses(item, fixture: str) -> bool:
    """Whether a collected test uses this file's `fixture` (not a module's own of that name)."""
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).get(fixture)
    return bool(defs) and defs[-1].func.__module__ == __name__


#: Under pytest-xdist (`make test`: two workers), the modules that share the session's Ray head and
#: MLflow server go to one worker as one unit, so each service starts once; every other module is a
#: unit of its own (its module fixtures start once). The shared-service unit, then test_hardening_ray
#: (~5 min), are scheduled first: the other worker takes the short modules meanwhile. A module that
#: starts using `ray_head` or `mlflow_server` belongs here (test_xdist_units checks it).
SHARED_SERVICES = ("test_infer.py", "test_review.py", "test_train_job.py", "test_tune.py")
FIRST_UNITS = ("shared-services", "tests/test_hardening_ray.py")


def _unit(nodeid: str) -> str:
    """The scheduling unit of a test: "shared-services" or its module's path."""
    module = nodeid.split("::", 1)[0]
    return "shared-services" if Path(module).name in SHARED_SERVICES else module


def pytest_collection_modifyitems(session, config, items) -> None:
    """Under pytest-xdist: the FIRST_UNITS' tests first, each unit in collection order otherwise."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {u: i for i, u in enumerate(FIRST_UNITS)}
    items.sort(key=lambda item: rank.get(_unit(item.nodeid), len(rank)))  # stable: same order in every worker


def pytest_xdist_make_scheduler(config, log):
    """Load-scope scheduling by `_unit`. (Not `--dist loadgroup`: with pytest 9.2 and pytest-xdist
    3.8 it sent tests of one `xdist_group` to both workers, checked on a five-test example.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return ByUnit(config, log)


def pytest_sessionfinish(session, exitstatus) -> None:
    for head in _HEAD:
        head.stop()


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """A Ray head on 127.0.0.1 with the job server (dashboard); yields its job-submission address."""
    head = _head()
    head.thread.join()
    if head.error:
        pytest.fail(head.error)
    try:
        yield {"address": head.address, "gcs": f"127.0.0.1:{head.port}", "tmp": tmp_path_factory.mktemp("ray")}
    finally:
        head.stop()


def _stop_cluster(ray_tmp: Path) -> None:
    """Stop only this head's processes (`ray stop` would stop every Ray cluster on the machine).

    The same clean-up the product's own local clusters get: every process naming the session
    folder or holding a file in it (the retitled agents included), SIGTERM then SIGKILL.
    """
    kill_cluster(ray_tmp)


def _wait_job_agent(address: str, env: dict[str, str], ray_tmp: Path, timeout: float = 300) -> None:
    """The dashboard answers before the node's job agent is ready; submit a no-op job until one runs."""
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        out = run([str(BIN / "ray"), "job", "submit", "--address", address, "--", sys.executable, "-c", "pass"],
                  env=env, timeout=120)
        if out.returncode == 0:
            return
        last = out.stdout[-1500:] + out.stderr[-1500:]
        time.sleep(2)
    agent_log = "".join(p.read_text(errors="replace")[-2000:] for p in ray_tmp.glob("session_*/logs/dashboard_agent.log"))
    raise TimeoutError(f"the Ray job agent at {address} never accepted a job:\n{last}\n"
                       f"dashboard_agent.log ends:\n{agent_log}")


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
