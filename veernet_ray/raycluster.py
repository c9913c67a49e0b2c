"""Joining a Ray cluster, or starting a private local one that dies with the command.

Every command that needs Ray (train, tune, infer) calls `init_ray` (issue 14, item 6):

- With an address (`--address` or $RAY_ADDRESS) it joins that cluster, after checking that
  the GCS port answers: an unreachable address fails in seconds with one line, where
  `ray.init` would retry for minutes.
- Without one it starts a NEW local cluster (`address="local"`) in its own temporary folder.
  `ray.init(address=None)` would instead join whatever cluster /tmp/ray/ray_current_cluster
  names, a dead one included ("Failed to connect to GCS" for minutes).
- A local cluster is owned by the command: a small reaper process, in its own session, waits
  for the command to exit (however it exits, SIGKILL included) and then kills every process
  of the cluster's temporary folder (Ray's dashboard and runtime-env agents ignore SIGTERM and
  outlive a killed driver) and removes the folder. Other Ray clusters on the
  machine are never touched: only processes naming this folder, or holding files in it, are.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: how long to wait for a given cluster's GCS port to answer before giving up
CONNECT_TIMEOUT_S = 15.0


class RayUnavailable(ValueError):
    """The Ray cluster named by an address cannot be reached; the message says what to do."""


def parse_gcs_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a `host:port` GCS address; None for other forms (ray://, auto, local)."""
    if "://" in address or address in ("auto", "local"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def wait_for_port(host: str, port: int, timeout_s: float) -> str:
    """"" once a TCP connection to host:port succeeds within timeout_s, else the last error."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(2.0, max(0.1, timeout_s))):
                return ""
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc.strerror or exc}"
        if time.monotonic() >= deadline:
            return last
        time.sleep(0.5)


def init_ray(address: str | None = None, *, include_dashboard: bool = False, log_to_driver: bool = True,
             connect_timeout_s: float = CONNECT_TIMEOUT_S, **kwargs: Any) -> str:
    """Join the cluster at `address` (else $RAY_ADDRESS), or start a private local one.

    Returns "joined" or "local". Raises RayUnavailable when a given address does not answer
    within connect_timeout_s. kwargs go to `ray.init` (e.g. num_cpus for a local cluster).
    """
    import ray

    if ray.is_initialized():
        return "joined"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        hp = parse_gcs_address(address)
        if hp is not None:
            problem = wait_for_port(*hp, connect_timeout_s)
            if problem:
                raise RayUnavailable(f"no Ray cluster answers at {address} ({problem}, waited "
                                     f"{connect_timeout_s:.0f} s); start one with `ray start --head` or leave "
                                     "--address (and $RAY_ADDRESS) out for a local Ray")
        ray.init(address=address, log_to_driver=log_to_driver, **kwargs)
        return "joined"
    temp_dir = Path(tempfile.mkdtemp(prefix=f"vn{os.getpid()}-", dir="/tmp"))  # short: unix sockets <= 107 chars
    start_reaper(os.getpid(), temp_dir)
    ray.init(address="local", _temp_dir=str(temp_dir), include_dashboard=include_dashboard,
             log_to_driver=log_to_driver, **kwargs)
    return "local"


def start_reaper(owner_pid: int, temp_dir: Path) -> subprocess.Popen:
    """A detached process that cleans up the local cluster in `temp_dir` once `owner_pid` is gone."""
    return subprocess.Popen(
        [sys.executable, "-m", "veernet_ray.raycluster", "--reap", str(owner_pid), str(temp_dir)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )


def cluster_pids(temp_dir: str | os.PathLike) -> list[int]:
    """Processes of the cluster in `temp_dir`: GCS, raylet, agents, client server, workers.

    A process belongs when its command line names the folder or it holds a file open under it.
    The command line alone is not enough: Ray's dashboard and runtime-env agents retitle
    themselves ("ray::DashboardAgent") and the client server names only the GCS address, yet
    all of them keep their log files in the folder open. Missed, the dashboard agent outlives
    its cluster holding port 52365, and the next `ray start --head` on the machine gets no job
    agent ("No available agent to submit job").
    """
    root = str(Path(temp_dir))
    marker = (root + "/").encode()
    me = os.getpid()
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        try:
            if marker in (proc / "cmdline").read_bytes() or _holds_file_under(proc, root):
                out.append(int(proc.name))
        except OSError:
            continue
    return out


def _holds_file_under(proc: Path, root: str) -> bool:
    """Whether /proc/<pid> has a file descriptor or its working directory under `root`."""
    links = [proc / "cwd"]
    try:
        links += list((proc / "fd").iterdir())
    except OSError:
        return False
    for link in links:
        try:
            target = os.readlink(link)
        except OSError:
            continue
        if target == root or target.startswith(root + "/"):
            return True
    return False


def kill_cluster(temp_dir: str | os.PathLike, grace_s: float = 2.0) -> int:
    """SIGTERM, then SIGKILL, every process of the cluster in `temp_dir`; remove the folder. Returns how many."""
    victims = cluster_pids(temp_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in victims:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        if sig == signal.SIGTERM and victims:
            time.sleep(grace_s)
            victims = cluster_pids(temp_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return len(victims)


def _reap(owner_pid: int, temp_dir: str) -> None:
    while True:
        try:
            os.kill(owner_pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:
            pass
        time.sleep(1.0)
    time.sleep(1.0)  # let a clean ray.shutdown() finish first
    kill_cluster(temp_dir)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--reap":
        _reap(int(sys.argv[2]), sys.argv[3])
