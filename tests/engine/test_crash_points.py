"""The crash-point table: for each life cycle, the system dies at every AWS call in turn
(before the call, and after it landed), then recovers by itself (redeliveries, ticks, the
sweep), and the invariants hold: one final record per run identity, the configured attempts,
nothing pending or running, the job's state right, the counters equal to the history.

The number of crash points covered is printed at the end of the test run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.models import Execution, Job
from chalicelib.security import outbound
from chalicelib.tasks import registry
from tests.conftest import FIGURES
from tests.engine.harness import EPOCH, System, check_invariants
from tests.faults import FaultInjector
from tests.receiver import Receiver, receiving

Runs = dict[tuple[int, datetime], list[Execution]]

# The system whose clock a slow task moves (tasks cannot see the test).
CURRENT: list[System] = []


@registry.task("test.slow", timeout=60)
def slow(ctx: Any, seconds: float = 45) -> str:
    """Takes `seconds` of the system's virtual time."""
    CURRENT[-1].clock.sleep(seconds)
    return "slow"


@dataclass(frozen=True)
class LifeCycle:
    name: str
    setup: Callable[[System], list[Job]]
    act: Callable[[System, list[Job]], None]
    expect: Callable[[System, list[Job], Runs], None]


def _date_job(system: System, **fields: Any) -> Job:
    return system.create_job(
        job_type="date", scheduled_time=(EPOCH + timedelta(minutes=5)).isoformat(), **fields
    )


def _to_run_time(system: System) -> None:
    system.clock.now = EPOCH + timedelta(minutes=4, seconds=30)
    system.next_tick = system.clock.now


def _only(runs: Runs) -> list[Execution]:
    assert len(runs) == 1, runs
    return next(iter(runs.values()))


# -- the life cycles ------------------------------------------------------------------------


def _scheduled_success(system: System, jobs: list[Job], runs: Runs) -> None:
    (attempt,) = _only(runs)
    assert attempt.status == "completed"
    assert system.job(jobs[0].id).current_status == "completed"


def _failure_with_retries(system: System, jobs: list[Job], runs: Runs) -> None:
    attempts = _only(runs)
    assert [a.status for a in attempts] == ["failed"] * 3


def _manual_act(system: System, jobs: list[Job]) -> None:
    system._survive(
        "api",
        lambda: system.api.execute_job(jobs[0].id, {"task_kwargs": {"x": 1}}, system.clock.now),
    )


def _manual_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    manual = [a for attempts in runs.values() for a in attempts if a.trigger == "manual"]
    if not manual:
        # The API died before it recorded the run: the caller got an error, nothing ran.
        assert system.deaths.by_part["api"] == 1
        return
    (run,) = manual
    assert (run.status, run.result) == ("completed", {"args": [], "kwargs": {"x": 1}})


def _forbid_setup(system: System) -> list[Job]:
    start = EPOCH + timedelta(minutes=5)
    return [
        system.create_job(
            job_type="interval",
            interval_seconds=30,
            start_time=start.isoformat(),
            end_time=(start + timedelta(seconds=30)).isoformat(),
            task_name="test.slow",
            concurrency_policy="forbid",
        )
    ]


def _forbid_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    assert len(runs) == 2
    finals = [attempts[-1] for attempts in runs.values()]
    assert {f.status for f in finals} <= {"completed", "skipped"}
    done = sorted(
        ((a.started_at, a.completed_at) for a in finals if a.status == "completed"),
        key=lambda span: span[0] or EPOCH,
    )
    assert done, "a forbid job ran none of its runs"
    for (_, end), (start, _) in itertools.pairwise(done):
        assert end is not None and start is not None and end <= start, "two runs overlapped"


def _buffer_one_setup(system: System) -> list[Job]:
    return [
        system.create_job(
            job_type="interval",
            interval_seconds=30,
            start_time=(EPOCH + timedelta(minutes=5)).isoformat(),
            end_time=(EPOCH + timedelta(minutes=5, seconds=60)).isoformat(),
            task_name="test.slow",
            concurrency_policy="buffer_one",
        )
    ]


def _buffer_one_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    """Three runs 30 s apart of a 45 s task: the first runs, the second waits and runs after
    it, the third is skipped only if the second was still waiting; never two at once."""
    assert len(runs) == 3
    finals = sorted((attempts[-1] for attempts in runs.values()), key=lambda a: a.scheduled_for)
    assert {f.status for f in finals} <= {"completed", "skipped", "missed"}
    assert finals[0].status == "completed" and finals[1].status == "completed"
    done = sorted(
        ((a.started_at, a.completed_at) for a in finals if a.status == "completed"),
        key=lambda span: span[0] or EPOCH,
    )
    for (_, end), (start, _) in itertools.pairwise(done):
        assert end is not None and start is not None and end <= start, "two runs overlapped"
    assert system.job(jobs[0].id).buffered is None


def _pause_until_act(system: System, jobs: list[Job]) -> None:
    system.clock.now = EPOCH + timedelta(minutes=1, seconds=30)
    system.tick()
    system.next_tick = system.clock.now + timedelta(seconds=60)
    until = {"note": "maintenance", "until": (EPOCH + timedelta(minutes=2, seconds=25)).isoformat()}
    system._survive("api", lambda: system.api.pause_job(jobs[0].id, system.clock.now, None, until))
    if system.deaths.by_part["api"]:  # the API died: the operator pauses again
        system._source(lambda: system.api.pause_job(jobs[0].id, system.clock.now, None, until))


def _pause_until_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    """Runs at 2:00, 2:10, 2:20 fall in the pause; 2:30 to 2:50 run after it ends by itself."""
    end = EPOCH + timedelta(minutes=2, seconds=25)
    statuses = {t: attempts[-1].status for (_, t), attempts in runs.items()}
    assert {s for t, s in statuses.items() if t < end} <= {"skipped"}
    assert {t for t, s in statuses.items() if t >= end and s == "completed"} == {
        EPOCH + timedelta(minutes=2, seconds=s) for s in (30, 40, 50)
    }
    job = system.job(jobs[0].id)
    assert (job.paused_until, job.paused_note) == (None, None)


def _pause_setup(system: System) -> list[Job]:
    start = EPOCH + timedelta(minutes=2)
    return [
        system.create_job(
            job_type="interval",
            interval_seconds=10,
            start_time=start.isoformat(),
            end_time=(start + timedelta(seconds=50)).isoformat(),
        )
    ]


def _pause_act(system: System, jobs: list[Job]) -> None:
    system.clock.now = EPOCH + timedelta(minutes=1, seconds=30)
    system.tick()
    system.next_tick = system.clock.now + timedelta(seconds=60)
    system._survive("api", lambda: system.api.pause_job(jobs[0].id, system.clock.now))
    if system.deaths.by_part["api"]:  # the API died: the operator pauses again
        system._source(lambda: system.api.pause_job(jobs[0].id, system.clock.now))


def _pause_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    assert {attempts[-1].status for attempts in runs.values()} <= {"skipped"}


def _quick_runs_then_pause_act(system: System, jobs: list[Job]) -> None:
    """Runs at 2:00, 2:10 and 2:20 (a plain job's quick successes write nothing on the job),
    then a pause at 2:25: the job must still show the last of them to finish, whichever that
    is (a run whose worker died finishes after the ones that followed it)."""
    system.clock.now = EPOCH + timedelta(minutes=1, seconds=30)
    system.run(until=timedelta(seconds=55), stop_when_quiet=False)
    system._survive("api", lambda: system.api.pause_job(jobs[0].id, system.clock.now))
    if system.deaths.by_part["api"]:  # the API died: the operator pauses again
        system._source(lambda: system.api.pause_job(jobs[0].id, system.clock.now))


def _quick_runs_then_pause_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    """The last run shown is checked with every life cycle (check_invariants); here, that
    the runs in the pause did not run. (A tick that died at 1:30 sends nothing before 2:30:
    then every run falls in the pause.)"""
    paused_at = system.job(jobs[0].id).paused_at
    assert paused_at is not None
    statuses = {t: attempts[-1].status for (_, t), attempts in runs.items()}
    assert {s for t, s in statuses.items() if t > paused_at} <= {"skipped"}


def _carried_setup(system: System) -> list[Job]:
    """A plain job every minute, 2:00 to 8:00: its runs are sent ahead carrying the job
    (chalicelib.snapshot)."""
    start = EPOCH + timedelta(minutes=2)
    return [
        system.create_job(
            job_type="cron",
            cron_expression="* * * * *",
            task_kwargs={"label": "old"},
            start_time=start.isoformat(),
            end_time=(start + timedelta(minutes=6)).isoformat(),
        )
    ]


def _carried_act(system: System, jobs: list[Job]) -> None:
    """The run at 2:00 from the job it carries, a PUT of new arguments at 2:30, the run at
    3:00, then a pause at 3:30: each change fences the runs sent ahead. An API that died is
    asked again, as an operator would."""
    system.clock.now = EPOCH + timedelta(minutes=1, seconds=30)
    system.run(until=timedelta(seconds=60), stop_when_quiet=False)
    job_id = jobs[0].id
    put = {"task_kwargs": {"label": "new"}}
    system._survive("api", lambda: system.api.update_job(job_id, put, system.clock.now))
    if system.deaths.by_part["api"]:
        system._source(lambda: system.api.update_job(job_id, put, system.clock.now))
    system.run(until=timedelta(seconds=60), stop_when_quiet=False)
    died = system.deaths.by_part["api"]
    system._survive("api", lambda: system.api.pause_job(job_id, system.clock.now))
    if system.deaths.by_part["api"] > died:
        system._source(lambda: system.api.pause_job(job_id, system.clock.now))


def _carried_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    """No run starts from the job as it was before a change: a run after the PUT has its
    new arguments, none runs after the pause."""
    job = system.job(jobs[0].id)
    assert job.paused_at is not None and job.rescheduled_at is None
    put_at = EPOCH + timedelta(minutes=2, seconds=30)
    for (_, t), attempts in runs.items():
        last = attempts[-1]
        if t > job.paused_at:
            assert last.status == "skipped", f"{t}: {last.status} after the pause"
        elif t > put_at and last.status == "completed":
            assert last.task_kwargs == {"label": "new"}, f"{t}: {last.task_kwargs}"


def _misfire_setup(system: System) -> list[Job]:
    job = system.create_job(
        job_type="interval",
        interval_seconds=60,
        start_time=(EPOCH - timedelta(minutes=10)).isoformat(),
        end_time=(EPOCH + timedelta(seconds=90)).isoformat(),
    )
    # The scheduler was down: the job's next run is ten minutes old.
    stale = job.model_copy(
        update={"next_run_at": EPOCH - timedelta(minutes=10), "version": job.version + 1}
    )
    system.store.jobs.replace_job(job, stale, reschedule=True)
    return [stale]


def _misfire_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    expected = {EPOCH + timedelta(minutes=m) for m in range(-10, 2)}
    assert {t for (_, t) in runs} == expected, "an occurrence was lost"
    statuses = {t: attempts[-1].status for (_, t), attempts in runs.items()}
    assert set(statuses.values()) <= {"missed", "completed"}
    for t, status in statuses.items():
        if t < EPOCH - timedelta(seconds=300):
            assert status == "missed", t
        if t >= EPOCH:
            assert status == "completed", t


def _long_retry_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    first, second = _only(runs)
    assert (first.status, second.status) == ("failed", "failed")
    assert second.started_at and first.completed_at
    assert second.started_at - first.completed_at >= timedelta(seconds=1000)


# -- notifications: a webhook receiver on loopback, for every system of a test --------------


HOOKS: list[Receiver] = []


@pytest.fixture(autouse=True)
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(outbound.ALLOW_ENV, "127.0.0.1")
    with receiving() as server:
        HOOKS.append(server)
        yield
        HOOKS.clear()


def _notified_setup(system: System) -> list[Job]:
    HOOKS[-1].posts.clear()  # each crash point's system starts from nothing
    url = f"http://127.0.0.1:{HOOKS[-1].server_address[1]}/hook"
    return [
        _date_job(
            system,
            task_name="nexus.fail",
            max_retries=2,
            retry_delay=1,
            notify={"channels": [{"webhook_url": url}]},
        )
    ]


def _notified_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    """At least once: never lost, at most twice (a death between the POST and its record),
    once when every message is delivered twice (the record stops the twin)."""
    attempts = _only(runs)
    assert [a.status for a in attempts] == ["failed"] * 3
    bodies = HOOKS[-1].bodies()
    assert {b["event_id"] for b in bodies} == {
        f"run.failed_final:{jobs[0].id}:{attempts[2].scheduled_for:%Y-%m-%dT%H:%M:%SZ}"
    }, bodies
    assert 1 <= len(bodies) <= (1 if system.sqs.duplicate_every_delivery else 2), bodies
    assert [a.notifications is not None for a in attempts] == [False, False, True]


def _dead_letter_setup(system: System) -> list[Job]:
    job = _date_job(system)
    _to_run_time(system)
    system.tick()
    system.next_tick = system.clock.now + timedelta(seconds=60)
    system.clock.now = EPOCH + timedelta(minutes=5)
    system.die_on_next_message(5)
    return [job]


def _dead_letter_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    attempts = _only(runs)
    if system.sqs.duplicate_every_delivery:
        # The message's twin was delivered as usual, ten minutes late: past the grace.
        assert [a.status for a in attempts] == ["missed"]
        return
    assert [(a.status, a.reason) for a in attempts] == [("failed", "dead-lettered")]
    assert system.job(jobs[0].id).last_run_status == "failed"


def _watched_setup(system: System) -> list[Job]:
    """Overdue 4 min after it is created (no success yet), recovered by its run at 5 min."""
    HOOKS[-1].posts.clear()
    url = f"http://127.0.0.1:{HOOKS[-1].server_address[1]}/hook"
    channels = [{"webhook_url": url}]
    return [_date_job(system, expect_success_within=240, notify={"channels": channels})]


def _watched_expect(system: System, jobs: list[Job], runs: Runs) -> None:
    """Each notice at least once (never lost), at most twice (a death between the POST and
    its record), once when every message is delivered twice; the count and the job's state
    end where they should, whatever died where."""
    (attempt,) = _only(runs)
    assert attempt.status == "completed"
    since = "2030-01-07T12:04:00Z"
    bodies = HOOKS[-1].bodies()
    ids = [b["event_id"] for b in bodies]
    expected = [f"job.overdue:{jobs[0].id}:{since}", f"job.recovered:{jobs[0].id}:{since}"]
    assert sorted(set(ids)) == expected, ids
    at_most = 1 if system.sqs.duplicate_every_delivery else 2
    assert all(1 <= ids.count(i) <= at_most for i in expected), ids
    assert ids.index(expected[0]) < ids.index(expected[1]), ids
    job = system.job(jobs[0].id)
    assert (job.overdue_since, job.overdue_notice) == (None, None)
    assert [d["event"] for d in job.overdue_notifications or []] == ["job.recovered"]
    assert system.api.overview(system.clock.now)["overdue_jobs"] == 0


def _run_to_time(system: System, jobs: list[Job]) -> None:
    _to_run_time(system)


LIFE_CYCLES = [
    LifeCycle("scheduled success", lambda s: [_date_job(s)], _run_to_time, _scheduled_success),
    LifeCycle(
        "failure with 2 retries",
        lambda s: [_date_job(s, task_name="nexus.fail", max_retries=2, retry_delay=1)],
        _run_to_time,
        _failure_with_retries,
    ),
    LifeCycle(
        "manual run with overrides",
        lambda s: [s.create_job(job_type="interval", interval_seconds=86400)],
        _manual_act,
        _manual_expect,
    ),
    LifeCycle("forbid overlap", _forbid_setup, _run_to_time, _forbid_expect),
    LifeCycle("pause while runs are queued", _pause_setup, _pause_act, _pause_expect),
    LifeCycle("buffer_one overlap", _buffer_one_setup, _run_to_time, _buffer_one_expect),
    LifeCycle(
        "pause until, resumed by itself", _pause_setup, _pause_until_act, _pause_until_expect
    ),
    LifeCycle(
        "quick runs of a plain job, then a pause",
        _pause_setup,
        _quick_runs_then_pause_act,
        _quick_runs_then_pause_expect,
    ),
    LifeCycle(
        "a plain job's runs carry it, then a PUT and a pause",
        _carried_setup,
        _carried_act,
        _carried_expect,
    ),
    LifeCycle("misfire after downtime", _misfire_setup, lambda s, j: None, _misfire_expect),
    LifeCycle(
        "retry longer than 900 s through the index",
        lambda s: [_date_job(s, task_name="nexus.fail", max_retries=1, retry_delay=1000)],
        _run_to_time,
        _long_retry_expect,
    ),
    LifeCycle("dead letter", _dead_letter_setup, lambda s, j: None, _dead_letter_expect),
    LifeCycle(
        "failure notified after its last retry",
        _notified_setup,
        _run_to_time,
        _notified_expect,
    ),
    LifeCycle(
        "overdue, then recovered (dead-man's switch)",
        _watched_setup,
        _run_to_time,
        _watched_expect,
    ),
]


@pytest.fixture
def fresh_aws(aws: None) -> Iterator[Callable[..., System]]:
    """A new table and queue per call: each crash point starts from nothing."""
    made = itertools.count(1)

    def make(**options: Any) -> System:
        system = System(f"crash-{next(made)}", **options)
        CURRENT.append(system)
        return system

    yield make
    CURRENT.clear()


def play(system: System, life: LifeCycle, faults: FaultInjector | None) -> list[Job]:
    jobs = life.setup(system)
    injector = system.inject(faults or FaultInjector())
    life.act(system, jobs)
    system.run()
    system.stop_faults()
    # Whatever the fault left undone, the system finishes on its own.
    system.run(until=timedelta(hours=3))
    runs = check_invariants(system, jobs)
    life.expect(system, jobs, runs)
    return [injector.count, *jobs]  # type: ignore[list-item]


@pytest.mark.parametrize("life", LIFE_CYCLES, ids=[life.name for life in LIFE_CYCLES])
@pytest.mark.parametrize("kind", ["crash", "crash_after"])
def test_a_crash_at_any_aws_call_loses_doubles_and_strands_nothing(fresh_aws, life, kind):
    baseline = fresh_aws()
    calls = play(baseline, life, None)[0]
    assert calls > 0
    failures = []
    for n in range(1, calls + 1):
        system = fresh_aws()
        try:
            play(system, life, FaultInjector().inject(n, kind))
        except AssertionError as exc:
            failures.append(f"call {n} ({kind}): {exc}")
    FIGURES[f"crash point: {life.name} / {kind}"] = calls
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("life", LIFE_CYCLES, ids=[life.name for life in LIFE_CYCLES])
def test_every_message_delivered_twice_changes_nothing(fresh_aws, life):
    system = fresh_aws(duplicate_every_delivery=True)
    play(system, life, None)
