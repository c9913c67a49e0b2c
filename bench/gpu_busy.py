"""GPU busy fraction, sampled with NVML through `nvidia-smi` while a block runs.

    with GpuBusy() as busy:
        ...  # the work
    busy.fraction   # mean utilization.gpu / 100 over the samples; None without nvidia-smi

`nvidia-smi` ships with the driver, so this needs no Python NVML binding. One
sample every `interval_ms` (default 100 ms): NVML's utilization is the share of
the last sample period in which a kernel ran.
"""

from __future__ import annotations

import shutil
import subprocess
import threading


class GpuBusy:
    def __init__(self, interval_ms: int = 100, index: int = 0) -> None:
        self.interval_ms, self.index = interval_ms, index
        self.samples: list[float] = []
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> "GpuBusy":
        exe = shutil.which("nvidia-smi")
        if exe:
            self._proc = subprocess.Popen(
                [exe, "-i", str(self.index), "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 f"-lms={self.interval_ms}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self.samples.append(float(line.strip()) / 100.0)
            except ValueError:
                pass

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._reader is not None:
            self._reader.join(timeout=5)

    @property
    def fraction(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None

    def text(self) -> str:
        f = self.fraction
        return "n/a (no nvidia-smi)" if f is None else f"{f:.0%} ({len(self.samples)} samples)"
