"""The DynamoDB Local profile's reading of Java Flight Recorder output (bench/dynamodb_local_profile.py)."""

from __future__ import annotations

import ctypes
import os
import threading
import time

from bench.dynamodb_local_profile import (
    OTHER,
    Profile,
    category,
    json_callers,
    parse_samples,
    thread_cpu,
)

ACCESS = "software.amazon.dynamodb.services.local.shared.access.sqlite"
# The shape `jfr print --events jdk.ExecutionSample` prints (JDK 17), trimmed.
PRINTED = """
jdk.ExecutionSample {
  startTime = 18:04:17.120
  sampledThread = "SQLiteQueue[]" (javaThreadId = 41)
  state = "STATE_RUNNABLE"
  stackTrace = [
    com.fasterxml.jackson.core.json.UTF8StreamJsonParser._updateLocation() line: 3150
    com.fasterxml.jackson.databind.ObjectMapper._readMapAndClose(JsonParser, JavaType) line: 4917
    com.fasterxml.jackson.databind.ObjectMapper.readValue(byte[], Class) line: 3880
    ACCESS.SQLiteDBAccessJob.getTableSchemaInfo2(String) line: 95
    ACCESS.SQLiteDBAccess$17.doWork() line: 1877
    com.almworks.sqlite4java.SQLiteQueue.runQueue() line: 681
    ...
  ]
}

jdk.ExecutionSample {
  startTime = 18:04:17.121
  sampledThread = "SQLiteQueue[]" (javaThreadId = 41)
  state = "STATE_RUNNABLE"
  stackTrace = [
    com.almworks.sqlite4java._SQLiteSwiggedJNI.sqlite3_step(long)
    com.almworks.sqlite4java.SQLiteStatement.step() line: 310
    com.almworks.sqlite4java.SQLiteQueue.runQueue() line: 681
  ]
}

jdk.ExecutionSample {
  startTime = 18:04:17.122
  sampledThread = "qtp1583001542-20" (javaThreadId = 60)
  state = "STATE_RUNNABLE"
  stackTrace = [
    org.partiql.lang.syntax.SqlLexer.tokenize(String) line: 402
    org.partiql.lang.syntax.SqlParser.parseExprNode(String) line: 3
    org.eclipse.jetty.server.Server.handle(Request, Response, Callback) line: 190
  ]
}

jdk.ExecutionSample {
  startTime = 18:04:17.123
  sampledThread = "qtp1583001542-21" (javaThreadId = 61)
  state = "STATE_RUNNABLE"
  stackTrace = [
    java.util.HashMap.put(Object, Object) line: 610
  ]
}
""".replace("ACCESS", ACCESS)
_PR_SET_NAME = 15


def test_samples_are_read_with_their_thread_and_frames_innermost_first() -> None:
    samples = parse_samples(PRINTED)

    assert [s.thread for s in samples] == [
        "SQLiteQueue[]",
        "SQLiteQueue[]",
        "qtp1583001542-20",
        "qtp1583001542-21",
    ]
    assert samples[0].frames[0] == "com.fasterxml.jackson.core.json.UTF8StreamJsonParser._updateLocation"
    assert samples[0].frames[-1] == "com.almworks.sqlite4java.SQLiteQueue.runQueue"  # "..." is not a frame
    assert samples[1].frames[0] == "com.almworks.sqlite4java._SQLiteSwiggedJNI.sqlite3_step"


def test_a_sample_takes_the_first_category_any_of_its_frames_matches() -> None:
    jackson, sqlite, partiql, other = (category(s.frames) for s in parse_samples(PRINTED))

    assert jackson == "decoding stored JSON (Jackson)"
    assert sqlite == "SQLite"
    # The parser runs inside Jetty's request handling: what it does counts, not where it is called.
    assert partiql == "parsing PartiQL"
    assert other == OTHER


def test_json_callers_name_the_frame_that_asked_for_the_decoding() -> None:
    samples = parse_samples(PRINTED)

    callers = json_callers(samples)

    assert callers == [
        (
            "software.amazon.dynamodb.services.local.shared.access.sqlite.SQLiteDBAccessJob.getTableSchemaInfo2",
            1,
        )
    ]


def test_shares_and_cpu_per_write_are_taken_per_thread_group() -> None:
    profile = Profile("insert", writes=1000, seconds=2.0, cpu_seconds={"sqlite": 0.9, "other": 0.5})
    profile.samples = parse_samples(PRINTED)

    assert profile.cpu_ms_per_write() == 1000 * 1.4 / 1000
    assert profile.cpu_ms_per_write("sqlite") == 0.9
    assert profile.shares(sqlite=True) == {"decoding stored JSON (Jackson)": 0.5, "SQLite": 0.5}
    assert profile.shares(sqlite=False) == {"parsing PartiQL": 0.5, OTHER: 0.5}
    assert Profile("put", 1, 1.0, {"sqlite": 0.0, "other": 0.0}).shares(sqlite=True) == {}


def test_thread_cpu_splits_a_process_by_thread_name() -> None:
    spun, stop = threading.Event(), threading.Event()

    def spin_as_sqlite_thread() -> None:
        # The name the kernel shows in /proc/<pid>/task/<tid>/comm, as the JVM names its threads.
        ctypes.CDLL("libc.so.6").prctl(_PR_SET_NAME, b"SQLiteQueue[]")
        # Spin for an amount of CPU, not of wall time: on a loaded machine half a second may give little.
        while time.thread_time() < 0.3:
            sum(range(1000))
        spun.set()
        stop.wait(30)  # alive until measured: a finished thread leaves /proc/<pid>/task

    before = thread_cpu(os.getpid())
    worker = threading.Thread(target=spin_as_sqlite_thread)
    worker.start()
    try:
        assert spun.wait(60)
        after = thread_cpu(os.getpid())
    finally:
        stop.set()
        worker.join()

    assert after["sqlite"] - before["sqlite"] >= 0.25  # the spinning thread's 0.3 s, to the clock tick
    assert after["other"] - before["other"] < 0.2  # this thread waited
