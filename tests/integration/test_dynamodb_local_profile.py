"""The DynamoDB Local profile (bench/dynamodb_local_profile.py) end to end, small: real DynamoDB Local with
the template's table, its threads read from /proc, and the JDK's flight recorder when it is installed."""

from __future__ import annotations

import shutil

from bench.dynamodb_local_profile import SQLITE_THREAD, profile, report


def test_each_kind_of_write_is_timed_split_by_thread_and_profiled() -> None:
    profiles = profile(["insert", "complete", "put"], writes=100, warmup=50, threads=4)

    assert [p.kind for p in profiles] == ["insert", "complete", "put"]
    for found in profiles:
        assert found.writes == 100
        assert found.seconds > 0
        # Every write reaches the database through DynamoDB Local's one SQLite thread.
        assert found.cpu_seconds["sqlite"] > 0
        assert found.cpu_seconds["other"] > 0
        if shutil.which("jcmd") and shutil.which("jfr"):
            assert any(s.thread.startswith(SQLITE_THREAD) for s in found.samples)
    lines = report(profiles, threads=4)
    assert [check.name.split(":")[0] for check in lines.checks] == ["insert", "complete", "put"]
