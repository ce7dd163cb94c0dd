"""The server side of the load bench: start and stop the app, and sample its process tree's
memory and CPU (from /proc) while the simulated visitors run."""
from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_client import ProtocolError, http  # noqa: E402


def proc_tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo and len(out) < 10_000:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_usage(pid: int) -> tuple[int, float]:
    """(RSS bytes, CPU seconds user+system) summed over the process tree of pid."""
    rss, cpu, tick = 0, 0.0, os.sysconf("SC_CLK_TCK")
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                rss += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return rss, cpu


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of the whole machine from /proc/stat: on a virtual machine, steal is
    the time the host gave this machine's CPUs to someone else (the runs are only comparable
    when it is near zero)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    steal = fields[7] if len(fields) > 7 else 0
    return steal, sum(fields[:8])


class Sampler:
    """RSS and load average of the server while a level runs (an asyncio task)."""

    def __init__(self, pid: int | None, every: float):
        self.pid, self.every = pid, every
        self.rss_peak = self.rss_start = self.rss_end = 0
        self.load_max = 0.0
        self.cpu_start = self.cpu_end = 0.0
        self.stat_start, self.steal_share = (0, 0), 0.0
        self._task = None

    async def __aenter__(self):
        if self.pid:
            self.rss_start, self.cpu_start = tree_usage(self.pid)
            self.rss_peak = self.rss_start
        self.load_max = loadavg()
        self.stat_start = cpu_times()
        self._task = asyncio.create_task(self._loop())
        return self

    async def _loop(self):
        while True:  # cancelled by __aexit__
            await asyncio.sleep(self.every)
            if self.pid:
                self.rss_peak = max(self.rss_peak, tree_usage(self.pid)[0])
            self.load_max = max(self.load_max, loadavg())

    async def __aexit__(self, *exc):
        self._task.cancel()
        if self.pid:
            self.rss_end, self.cpu_end = tree_usage(self.pid)
            self.rss_peak = max(self.rss_peak, self.rss_end)
        self.load_max = max(self.load_max, loadavg())
        end = cpu_times()
        total = end[1] - self.stat_start[1]
        self.steal_share = (end[0] - self.stat_start[0]) / total if total > 0 else 0.0


class Server:
    """The server under test: started here (--start, own process group) or given (--server-pid)."""

    def __init__(self, args, command: str | None):
        self.args, self.command = args, command
        self.proc: subprocess.Popen | None = None
        self.pid = args.server_pid

    async def __aenter__(self):
        if self.command:
            env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
            log = open(self.args.server_log, "ab") if self.args.server_log else subprocess.DEVNULL
            # in the caller's directory: `cd ../other-checkout && python …/bench/load.py --start
            # "bash scripts/demo.sh …"` measures that checkout, not the one holding this bench
            self.proc = subprocess.Popen(shlex.split(self.command), env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            self.pid = self.proc.pid
        await wait_healthy(self.args.port, self.args.start_timeout, self.proc)
        return self

    async def __aexit__(self, *exc):
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the group this bench started, no other
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


async def wait_healthy(port: int, limit: float, proc=None) -> None:
    t_end = time.perf_counter() + limit
    while time.perf_counter() < t_end:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode} before it answered; see --server-log")
        try:
            status, _, _ = await http(port, "GET", "/_stcore/health", timeout=2)
            if status == 200:
                return
        except (OSError, asyncio.TimeoutError, ProtocolError):
            pass
        await asyncio.sleep(0.5)
    raise SystemExit(f"no healthy server on 127.0.0.1:{port} after {limit:.0f} s")
