"""Keep child processes running: restart one that dies, with backoff; stop them all only when asked.

``make run`` supervises the web server and the task worker with it, and ``manage.py run_worker`` its one
django-q2 cluster per queue. A child runs in a session of its own, so that what it started goes with it: when it
dies, what is left of its process group (the orphaned workers of a cluster whose main process was killed) is
killed before it is started again; and Ctrl-C at the terminal reaches the supervisor alone, which stops the
children in order. A child also gets SIGTERM if its supervisor dies (Linux), so a killed ``make run`` leaves no
server behind.

Backoff: the first restart after a child ran a while waits ``base`` seconds, each quick death after it twice as
long, up to ``ceiling``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # not Linux: the supervisor's own stop() is all there is
            return
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)
    return preexec


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None  # monotonic time of the next start, while it is down
    starts: int = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


@dataclass
class Supervisor:
    children: list[Child]
    log: Callable[[str], None] = print
    base: float = 1.0
    ceiling: float = 30.0
    #: a child that ran this long before dying is restarted after ``base`` again
    stable_after: float = 60.0
    #: how long a child may take to stop on SIGTERM before it is killed
    stop_grace: float = 20.0
    _stopping: bool = field(default=False, init=False)

    def start(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.argv, env=child.env, cwd=child.cwd, start_new_session=True,
                                      preexec_fn=_die_with_parent(os.getpid()))
        child.started_at, child.restart_at = time.monotonic(), None
        child.starts += 1

    def start_all(self) -> None:
        for child in self.children:
            self.start(child)

    def exited(self) -> list[Child]:
        """Children that are down now (dead and not restarted yet)."""
        return [c for c in self.children if c.proc is not None and c.proc.poll() is not None]

    def check(self) -> None:
        """Notice children that died (schedule their restart) and start those whose wait is over. Call often."""
        now = time.monotonic()
        for child in self.children:
            if self._stopping or child.proc is None:
                continue
            code = child.proc.poll()
            if code is not None and child.restart_at is None:
                _kill_group(child.proc.pid)  # what it left behind (orphaned workers of a killed cluster)
                child.quick_deaths = 0 if now - child.started_at >= self.stable_after else child.quick_deaths + 1
                delay = min(self.ceiling, self.base * 2 ** max(child.quick_deaths - 1, 0))
                child.restart_at = now + delay
                self.log(f"{child.name} (pid {child.proc.pid}) exited with {describe_exit(code)}; "
                         f"restarting it in {delay:g} s")
            if child.restart_at is not None and now >= child.restart_at:
                self.start(child)
                self.log(f"{child.name} restarted (pid {child.proc.pid})")

    def run(self, until: Callable[[], bool] = lambda: False, interval: float = 0.2) -> None:
        """Supervise until ``until()`` is true or a signal handler raises (KeyboardInterrupt)."""
        while not until():
            self.check()
            time.sleep(interval)

    def stop(self) -> None:
        """SIGTERM to every child, in reverse order of the list (to its main process only: gunicorn and a django-q2
        cluster stop their own workers, finishing what they are doing); SIGKILL to what is left of each child's
        process group after ``stop_grace`` seconds."""
        self._stopping = True
        running = [c for c in reversed(self.children) if c.proc is not None and c.proc.poll() is None]
        for child in running:
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for child in running:
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"{child.name} (pid {child.proc.pid}) did not stop in {self.stop_grace:g} s; killing it")
        for child in self.children:
            if child.proc is not None:
                _kill_group(child.proc.pid)
                child.proc.wait()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
