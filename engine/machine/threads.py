"""How many intra-op threads training uses, chosen by measurement and re-checked as it runs.

PyTorch's CPU kernels split work over OpenMP threads, one per core, and those
threads wait for each other at every small operation (an LSTM step is many).
When another process is busy on one of the cores, every such wait lasts until
the OS schedules the preempted thread again: on a 2-core AMD EPYC with one core
taken by a busy loop, a cpu-preset step took 7-8.6 s with 2 threads and
1.5-2.5 s with one (0.67 s with 2 on the quiet machine). So the thread count
that is right depends on the machine at this moment, and only measuring tells.

The governor watches how much CPU other processes use (`/proc/stat` minus this
process's own CPU time). While nobody else is busy it never changes anything,
so a quiet run keeps the default and its exact numerics. When others were busy
during the set-up, training starts on the idle cores only. When others take at
least half a core later, it tries one thread for a few steps and keeps whichever
count gave the faster steps; at one thread it tries the full count again now
and then, since the other job may have ended. A probe of the slower count is cut
short after one step that is clearly slower, so a probe costs about one step.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

CHECK_EVERY_S = 5.0  # how often other processes' CPU use is read
BUSY_CORES = 0.5  # others using this much CPU (in cores) make the default count suspect
PROBE_STEPS = 3
KEEP_IF_FASTER = 0.9  # a probed count is kept when its median step is 10% faster
ABORT_IF_SLOWER = 2.0  # one probe step this much slower than before ends the probe
RETRY_FULL_S = 30.0  # at one thread, try the full count again after this long
BACKOFF_MAX_S = 240.0


def others_cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds all processes have used, this process's) since boot; None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    per_second = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    own = os.times()
    return (sum(ticks[:8]) - idle) / per_second, own.user + own.system


@dataclass
class ThreadChoice:
    """A change of thread count, for the status line and the run's log."""

    threads: int
    reason: str


class ThreadGovernor:
    """Keeps the intra-op thread count that makes training steps fastest right now."""

    def __init__(
        self,
        max_threads: int,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        cpu_seconds: Callable[[], tuple[float, float] | None] = others_cpu_seconds,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        self.max_threads = max_threads
        self.enabled = enabled and max_threads > 1
        self.clock = clock
        self.cpu_seconds = cpu_seconds
        self.set_threads = set_threads
        self.current = max_threads
        self.recent: deque[float] = deque(maxlen=PROBE_STEPS)  # step seconds at `current`
        self.probe: list[float] | None = None  # step seconds at the count being tried
        self.before: tuple[int, float] | None = None  # (count, median step) before the probe
        # The first check comes after the first step: on a busy machine one step can take
        # 20 s, and waiting for several before acting would spend a short budget on them.
        self.next_check = clock()
        self.last_reading = cpu_seconds() if self.enabled else None
        self.last_read_at = clock()
        self.others = 0.0
        self.next_full_try = 0.0
        self.backoff = RETRY_FULL_S
        self.choices: list[ThreadChoice] = []
        self.started = False

    def start(self) -> ThreadChoice | None:
        """Before the first step: with others busy since set-up began, leave them their cores.

        Threads beyond the idle cores only wait on preempted peers, so training starts
        on `max_threads - (cores others use)`, at least one; the first checks measure it.
        """
        if not self.enabled or self.started:
            return None  # a second call (the set-up's width probe started it) changes nothing
        self.started = True
        self._read_others()
        self.next_check = self.clock() + CHECK_EVERY_S
        if self.others < BUSY_CORES:
            return None
        threads = max(1, self.max_threads - math.ceil(self.others - 0.25))
        if threads == self.max_threads:
            return None
        self.current = threads
        self.set_threads(threads)
        self.next_full_try = self.clock() + RETRY_FULL_S
        plural = "s" * (threads > 1)
        return self._note(
            threads, f"starting on {threads} thread{plural}: others use {self.others:.1f} cores"
        )

    def after_step(self, seconds: float, may_probe: bool = True) -> ThreadChoice | None:
        """Record one training step's time; returns a change of thread count, if one was made.

        `may_probe` False (a time budget nearly spent) finishes a probe but starts none.
        """
        if not self.enabled:
            return None
        if self.probe is not None:
            return self._probing(seconds)
        self.recent.append(seconds)
        now = self.clock()
        if not may_probe or now < self.next_check:
            return None
        self.next_check = now + CHECK_EVERY_S
        self._read_others()
        if self.current == self.max_threads and self.others >= BUSY_CORES:
            return self._start_probe(1, f"others use {self.others:.1f} cores")
        if self.current < self.max_threads and now >= self.next_full_try:
            return self._start_probe(self.max_threads, "re-checking the full count")
        return None

    def _read_others(self) -> None:
        reading, now = self.cpu_seconds(), self.clock()
        if reading is None or self.last_reading is None:
            # No /proc/stat: no cheap signal of contention, so probe on the clock instead.
            self.others = BUSY_CORES
        else:
            (busy, own), (busy0, own0) = reading, self.last_reading
            interval = max(now - self.last_read_at, 1e-3)
            self.others = max(0.0, (busy - busy0) - (own - own0)) / interval
        self.last_reading, self.last_read_at = reading, now

    def _start_probe(self, threads: int, why: str) -> ThreadChoice:
        self.before = (self.current, statistics.median(self.recent))
        self.probe = []
        self.current = threads
        self.set_threads(threads)
        return self._note(threads, f"trying {threads} thread{'s' * (threads > 1)} ({why})")

    def _probing(self, seconds: float) -> ThreadChoice | None:
        assert self.probe is not None and self.before is not None
        self.probe.append(seconds)
        previous, previous_median = self.before
        clearly_slower = seconds > ABORT_IF_SLOWER * previous_median
        if len(self.probe) < PROBE_STEPS and not clearly_slower:
            return None
        median = statistics.median(self.probe)
        now = self.clock()
        self.probe, self.before = None, None
        self.recent.clear()
        self.next_check = now + CHECK_EVERY_S
        if not clearly_slower and median < KEEP_IF_FASTER * previous_median:
            self.recent.extend([median] * PROBE_STEPS)
            self.backoff = RETRY_FULL_S
            self.next_full_try = now + RETRY_FULL_S
            speedup = previous_median / median
            return self._note(self.current, f"{speedup:.1f}x faster steps than {previous}")
        # Not better: back to where it was, and wait longer before the next try.
        self.current = previous
        self.set_threads(previous)
        self.recent.extend([previous_median] * PROBE_STEPS)
        self.next_full_try = now + self.backoff
        self.backoff = min(BACKOFF_MAX_S, self.backoff * 2)
        if previous == self.max_threads:
            self.next_check = now + self.backoff  # others stay busy: do not probe at once
        return self._note(previous, "kept: the other count was not faster")

    def _note(self, threads: int, reason: str) -> ThreadChoice:
        choice = ThreadChoice(threads, reason)
        self.choices.append(choice)
        return choice
