"""The thread governor: it changes nothing while the cores are free, moves to one thread
when others are busy and that is faster, keeps the count that measured faster, comes back
when the other job ends, and a pinned count is kept by the trainer."""

from __future__ import annotations

import torch

from engine.machine.threads import CHECK_EVERY_S, RETRY_FULL_S, ThreadGovernor
from tests.helpers import write_markov


class Machine:
    """A fake clock, fake CPU accounting and step times that depend on the thread count."""

    def __init__(self, step_s: dict[int, float], others_cores: float = 0.0) -> None:
        self.now = 0.0
        self.busy = 0.0
        self.own = 0.0
        self.step_s = step_s
        self.others_cores = others_cores
        self.threads = max(step_s)
        self.set_calls: list[int] = []

    def set_threads(self, n: int) -> None:
        self.threads = n
        self.set_calls.append(n)

    def cpu_seconds(self) -> tuple[float, float]:
        return self.busy, self.own

    def governor(self) -> ThreadGovernor:
        return ThreadGovernor(
            max(self.step_s),
            clock=lambda: self.now,
            cpu_seconds=self.cpu_seconds,
            set_threads=self.set_threads,
        )

    def run(self, governor: ThreadGovernor, steps: int) -> None:
        for _ in range(steps):
            seconds = self.step_s[self.threads]
            self.now += seconds
            self.own += seconds * self.threads
            self.busy += seconds * (self.threads + self.others_cores)
            governor.after_step(seconds)


def test_a_quiet_machine_never_changes_the_count() -> None:
    machine = Machine({1: 1.2, 2: 0.67})
    governor = machine.governor()
    machine.run(governor, 500)
    assert machine.set_calls == [] and governor.current == 2 and governor.choices == []


def test_others_busy_and_one_thread_faster_moves_to_one_thread() -> None:
    machine = Machine({1: 1.5, 2: 7.0}, others_cores=1.0)
    governor = machine.governor()
    machine.run(governor, 10)
    assert governor.current == 1 and machine.threads == 1
    assert "others use 1.0 cores" in governor.choices[0].reason
    assert "4.7x faster" in governor.choices[1].reason


def test_others_busy_but_full_count_still_faster_keeps_it_and_backs_off() -> None:
    machine = Machine({1: 1.2, 2: 0.7}, others_cores=0.6)
    governor = machine.governor()
    machine.run(governor, 20)
    assert machine.set_calls[:2] == [1, 2] and governor.current == 2
    probes = len(machine.set_calls)
    machine.run(governor, int(RETRY_FULL_S / 0.7))  # backed off: no probe straight away
    assert len(machine.set_calls) == probes


def test_a_slower_probe_is_cut_short_after_one_step() -> None:
    machine = Machine({1: 10.0, 2: 1.0}, others_cores=0.8)
    governor = machine.governor()
    machine.run(governor, int(CHECK_EVERY_S) + 3)
    assert machine.set_calls == [1, 2]  # one 10 s step at 1 thread, then back
    assert governor.current == 2


def test_comes_back_to_the_full_count_when_the_other_job_ends() -> None:
    machine = Machine({1: 1.5, 2: 7.0}, others_cores=1.0)
    governor = machine.governor()
    machine.run(governor, 10)
    assert governor.current == 1
    machine.step_s[2] = 0.7  # the other job ended
    machine.others_cores = 0.0
    machine.run(governor, int(RETRY_FULL_S / 1.5) + 10)
    assert governor.current == 2 and machine.threads == 2


def test_without_cpu_accounting_it_probes_on_the_clock() -> None:
    machine = Machine({1: 1.5, 2: 7.0})
    governor = ThreadGovernor(
        2, clock=lambda: machine.now, cpu_seconds=lambda: None, set_threads=machine.set_threads
    )
    machine.run(governor, 10)
    assert governor.current == 1


def test_one_thread_or_disabled_does_nothing() -> None:
    machine = Machine({1: 1.0, 2: 9.0}, others_cores=1.0)
    for governor in (
        ThreadGovernor(1, cpu_seconds=machine.cpu_seconds, set_threads=machine.set_threads),
        ThreadGovernor(
            2, enabled=False, cpu_seconds=machine.cpu_seconds, set_threads=machine.set_threads
        ),
    ):
        for _ in range(50):
            assert governor.after_step(9.0) is None
    assert machine.set_calls == []


def test_the_trainer_keeps_a_pinned_count_and_gives_the_process_its_count_back(tmp_path) -> None:
    from engine.config.train import TrainConfig
    from engine.data.corpus import load_corpus
    from engine.training.trainer import Trainer
    from tests.helpers import tiny_config

    path, _ = write_markov(tmp_path / "m.txt", 5000)
    before = torch.get_num_threads()
    seen: list[int] = []
    config = TrainConfig(
        batch_size=4, seq_len=16, max_steps=3, eval_interval=3, eval_chars=64, threads=1
    )
    trainer = Trainer(
        load_corpus(str(path)),
        tiny_config("lstm"),
        config,
        on_event=lambda e: seen.append(torch.get_num_threads()),
    )
    result = trainer.run()
    assert set(seen[1:]) == {1} and result.threads == 1 and result.thread_changes == []
    assert torch.get_num_threads() == before


def test_a_busy_machine_is_acted_on_after_the_first_step() -> None:
    """A 20 s step: waiting for three before looking would spend a short budget on them."""
    machine = Machine({1: 3.0, 2: 20.0}, others_cores=1.0)
    governor = machine.governor()
    machine.run(governor, 1)
    assert machine.set_calls == [1]
    machine.run(governor, 3)
    assert governor.current == 1 and len(machine.set_calls) == 1


def test_others_busy_during_set_up_start_training_on_the_idle_cores() -> None:
    for cores, others, expected in ((2, 1.0, 1), (8, 1.0, 7), (8, 2.6, 5), (2, 0.2, 2)):
        machine = Machine({1: 1.0, cores: 1.0}, others_cores=others)
        governor = ThreadGovernor(
            cores,
            clock=lambda m=machine: m.now,
            cpu_seconds=machine.cpu_seconds,
            set_threads=machine.set_threads,
        )
        machine.now += 2.0  # corpus, model, evaluation probe: others keep working meanwhile
        machine.busy += 2.0 * others
        choice = governor.start()
        assert governor.current == expected, (cores, others)
        assert (choice is None) == (expected == cores)
        assert machine.set_calls == ([] if expected == cores else [expected])
        # Started early (the width probe at set-up), the loop's own start changes nothing.
        machine.now += 2.0
        machine.busy += 2.0 * (cores - others)
        assert governor.start() is None
        assert governor.current == expected and len(governor.choices) == (expected != cores)
