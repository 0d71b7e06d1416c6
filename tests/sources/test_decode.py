"""Framing raw lines into records: plain, CRI, JSON and Docker json-file, multiline events.

Time is the ``now`` argument; offsets are counted in UTF-8 bytes as the file
source counts them, one newline after each line.
"""

from __future__ import annotations

import json
import re
import tracemalloc

import pytest

from tailhook.sources.decode import CUT_MARKER, Framer, MultilineSettings, Record

pytestmark = pytest.mark.timeout(30)

TIMESTAMP_START = MultilineSettings(start=re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}"))
"""The commonest setting: application log entries begin with a timestamp."""
PYTHON_CONTINUATION = MultilineSettings(
    continuation=re.compile(r"\s|$|Traceback|During handling|The above exception|[\w.]+(Error|Exception)(:|$)")
)
JAVA_CONTINUATION = MultilineSettings(continuation=re.compile(r"\s|Caused by:"))

PYTHON_TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/srv/app/views.py", line 42, in handle',
    "    total = compute(order)",
    "            ^^^^^^^^^^^^^^",
    '  File "/srv/app/orders.py", line 7, in compute',
    '    raise ValueError("order has no lines")',
    "ValueError: order has no lines",
]
JAVA_TRACE = [
    "java.lang.IllegalStateException: boom",
    "\tat com.example.Worker.run(Worker.java:10)",
    "\tat com.example.App.main(App.java:5)",
    "Caused by: java.io.IOException: disk gone",
    "\tat com.example.Disk.read(Disk.java:42)",
    "\t... 2 more",
]


class File:
    """Feeds lines to a framer as the file source would, keeping each line's byte offsets."""

    def __init__(self, framer: Framer) -> None:
        self.framer = framer
        self.spans: list[tuple[int, int]] = []

    def feed(self, *lines: str, now: float = 0.0) -> list[Record]:
        records = []
        for line in lines:
            start = self.spans[-1][1] if self.spans else 0
            end = start + len(line.encode()) + 1
            self.spans.append((start, end))
            records.extend(self.framer.feed(line, start, end, now))
        return records

    def span(self, first: int, last: int | None = None) -> tuple[int, int]:
        """The offsets of line *first* through line *last* (counted from 0, as fed)."""
        return self.spans[first][0], self.spans[first if last is None else last][1]


def cri(message: str, stream: str = "stdout", tag: str = "F", logtime: str = "2026-11-23T10:00:00.123456789Z") -> str:
    return f"{logtime} {stream} {tag} {message}"


def docker(log: str, stream: str = "stdout", time: str = "2026-11-23T10:00:00.1Z") -> str:
    return json.dumps({"log": log, "stream": stream, "time": time})


def out(stream: str = "stdout", logtime: str = "2026-11-23T10:00:00.123456789Z") -> dict[str, str]:
    return {"stream": stream, "logtime": logtime}


# ── plain ──────────────────────────────────────────────────────────────────


def test_plain_lines_pass_as_they_are_with_their_offsets() -> None:
    file = File(Framer("plain"))
    records = file.feed("first line", "", "ünïcode ✓", "  indented")
    assert records == [
        Record("first line", {}, *file.span(0)),
        Record("", {}, *file.span(1)),
        Record("ünïcode ✓", {}, *file.span(2)),
        Record("  indented", {}, *file.span(3)),
    ]
    assert file.span(3) == (26, 37)  # offsets count UTF-8 bytes: ü, ï take 2, ✓ takes 3
    assert file.framer.held_from() is None
    assert file.framer.deadline() is None
    assert file.framer.flush() == []


# ── CRI ────────────────────────────────────────────────────────────────────


def test_cri_full_lines_give_message_stream_and_logtime() -> None:
    file = File(Framer("cri"))
    records = file.feed(
        cri("hello world"),
        cri("oops: something  with  spaces ", "stderr", logtime="2026-11-23T10:00:01.5+01:00"),
        cri("tagged", tag="F:x-extra"),
    )
    assert records == [
        Record("hello world", out(), *file.span(0)),
        Record("oops: something  with  spaces ", out("stderr", "2026-11-23T10:00:01.5+01:00"), *file.span(1)),
        Record("tagged", out(), *file.span(2)),
    ]
    assert file.framer.malformed == 0


def test_cri_empty_message_with_or_without_the_trailing_space() -> None:
    file = File(Framer("cri"))
    records = file.feed("2026-11-23T10:00:00.1Z stdout F ", "2026-11-23T10:00:00.1Z stderr F")
    assert [(r.text, r.fields["stream"]) for r in records] == [("", "stdout"), ("", "stderr")]
    assert file.framer.malformed == 0


def test_cri_partials_are_joined_with_the_full_line_that_ends_them() -> None:
    file = File(Framer("cri"))
    assert file.feed(cri("a long ", tag="P", logtime="2026-11-23T10:00:00.1Z")) == []
    assert file.feed(cri("line split ", tag="P", logtime="2026-11-23T10:00:00.2Z")) == []
    (record,) = file.feed(cri("by the runtime", logtime="2026-11-23T10:00:00.3Z"))
    assert record == Record("a long line split by the runtime", out(logtime="2026-11-23T10:00:00.1Z"), *file.span(0, 2))
    assert file.feed(cri("next")) == [Record("next", out(), *file.span(3))]


def test_cri_stdout_and_stderr_partials_interleave_without_mixing() -> None:
    file = File(Framer("cri"))
    records = file.feed(
        cri("out-1 ", "stdout", "P"),
        cri("err-1 ", "stderr", "P"),
        cri("out-2", "stdout", "F"),
        cri("err-2 ", "stderr", "P"),
        cri("whole", "stdout", "F"),
        cri("err-3", "stderr", "F"),
    )
    assert records == [
        Record("out-1 out-2", out("stdout"), file.span(0)[0], file.span(2)[1]),
        Record("whole", out("stdout"), *file.span(4)),
        Record("err-1 err-2 err-3", out("stderr"), file.span(1)[0], file.span(5)[1]),
    ]


def test_held_from_covers_partials_until_their_full_line() -> None:
    framer = Framer("cri")
    file = File(framer)
    file.feed(cri("one", "stdout"))
    assert framer.held_from() is None
    file.feed(cri("out ", "stdout", "P"))
    assert framer.held_from() == file.span(1)[0]
    file.feed(cri("err ", "stderr", "P"))
    assert framer.held_from() == file.span(1)[0]  # the earliest held line
    file.feed(cri("done", "stdout"))
    assert framer.held_from() == file.span(2)[0]  # stdout is complete; stderr still waits
    file.feed(cri("done", "stderr"))
    assert framer.held_from() is None


def test_cri_run_of_partials_longer_than_max_bytes_is_cut_in_bounded_memory() -> None:
    framer = Framer("cri", max_bytes=65536)
    partial = cri("x" * 16384, tag="P")  # the runtime splits at 16 KiB
    size = len(partial) + 1
    tracemalloc.start()
    try:
        for n in range(2000):  # a 32 MiB line
            assert framer.feed(partial, n * size, (n + 1) * size, now=0.0) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert framer.held_from() == 0
    (record,) = framer.feed(cri("tail"), 2000 * size, 2000 * size + 50, now=0.0)
    assert record == Record("x" * 65536 + CUT_MARKER, out(), 0, 2000 * size + 50)
    assert framer.cut == 1
    assert framer.held_from() is None


@pytest.mark.parametrize(
    "line",
    [
        "plain text from somewhere else",
        "",
        "2026-11-23T10:00:00.1Z stdin F not a stream",
        "2026-11-23T10:00:00.1Z stdout X no such tag",
        "yesterday stdout F not a timestamp",
        "2026-11-23T10:00:00.1Z stdout",
    ],
)
def test_cri_line_in_another_form_passes_as_plain_and_is_counted(line: str) -> None:
    file = File(Framer("cri"))
    assert file.feed(line) == [Record(line, {}, *file.span(0))]
    assert file.framer.malformed == 1


def test_partial_whose_end_never_comes_is_given_out_after_partial_timeout() -> None:
    framer = Framer("cri", partial_timeout=5.0)
    file = File(framer)
    assert file.feed(cri("Password: ", tag="P"), now=100.0) == []
    assert framer.deadline() == 105.0
    assert framer.due(104.9) == []
    assert framer.due(105.0) == [Record("Password: ", out(), *file.span(0))]
    assert framer.held_from() is None
    assert framer.deadline() is None
    # The rest, when it comes at last, is a record of its own.
    assert file.feed(cri("hunter2"), now=200.0) == [Record("hunter2", out(), *file.span(1))]


# ── JSON and Docker json-file ──────────────────────────────────────────────


def test_json_message_key_is_the_text_and_other_keys_are_fields() -> None:
    file = File(Framer("json", message_key="msg"))
    line = json.dumps(
        {
            "ts": "2026-11-23T10:00:00Z",
            "msg": "payment failed ✗",
            "status": 502,
            "ratio": 0.25,
            "retry": True,
            "user": None,
            "ctx": {"order": [1, 2], "note": "ü"},
        }
    )
    assert file.feed(line) == [
        Record(
            "payment failed ✗",
            {
                "ts": "2026-11-23T10:00:00Z",
                "status": "502",
                "ratio": "0.25",
                "retry": "true",
                "user": "null",
                "ctx": '{"order":[1,2],"note":"ü"}',
            },
            *file.span(0),
        )
    ]
    assert file.framer.malformed == 0


@pytest.mark.parametrize(
    ("value", "text"),
    [({"code": 7, "why": "x"}, '{"code":7,"why":"x"}'), (42, "42"), (False, "false"), ("keeps\n", "keeps\n")],
)
def test_json_message_that_is_not_a_string_becomes_compact_json(value: object, text: str) -> None:
    file = File(Framer("json"))
    (record,) = file.feed(json.dumps({"message": value, "level": "error"}))
    assert record == Record(text, {"level": "error"}, *file.span(0))


def test_docker_json_file_entry_loses_its_newline() -> None:
    file = File(Framer("json", message_key="log"))
    records = file.feed(docker("hello\n"), docker("crlf\r\n", "stderr"), docker("\n"))
    assert records == [
        Record("hello", {"stream": "stdout", "time": "2026-11-23T10:00:00.1Z"}, *file.span(0)),
        Record("crlf", {"stream": "stderr", "time": "2026-11-23T10:00:00.1Z"}, *file.span(1)),
        Record("", {"stream": "stdout", "time": "2026-11-23T10:00:00.1Z"}, *file.span(2)),
    ]


def test_docker_partial_entries_are_joined_per_stream() -> None:
    framer = Framer("json", message_key="log")
    file = File(framer)
    assert file.feed(docker("out-1 ", time="t1"), docker("err-1 ", "stderr", "t2")) == []
    assert framer.held_from() == 0
    records = file.feed(docker("out-2\n", time="t3"), docker("err-2\n", "stderr", "t4"))
    assert records == [
        Record("out-1 out-2", {"stream": "stdout", "time": "t1"}, file.span(0)[0], file.span(2)[1]),
        Record("err-1 err-2", {"stream": "stderr", "time": "t2"}, file.span(1)[0], file.span(3)[1]),
    ]
    assert framer.held_from() is None


def test_docker_partials_longer_than_max_bytes_are_cut() -> None:
    file = File(Framer("json", message_key="log", max_bytes=1000))
    assert file.feed(*[docker("y" * 400)] * 10) == []
    (record,) = file.feed(docker("end\n"))
    assert record.text == "y" * 1000 + CUT_MARKER
    assert (record.start, record.end) == file.span(0, 10)
    assert file.framer.cut == 1


def test_json_without_the_docker_shape_keeps_entries_apart() -> None:
    file = File(Framer("json", message_key="log"))
    records = file.feed('{"log": "no newline, no stream"}', '{"log": "second"}')
    assert [r.text for r in records] == ["no newline, no stream", "second"]


@pytest.mark.parametrize(
    "line",
    [
        "not json at all",
        '{"message": "unterminated',
        '["an", "array"]',
        '"a string"',
        '{"msg": "the key is missing"}',
        "[" * 100_000,  # deeper than the parser goes
    ],
)
def test_json_line_that_is_not_an_object_with_the_key_passes_as_plain(line: str) -> None:
    file = File(Framer("json"))
    assert file.feed(line) == [Record(line, {}, *file.span(0))]
    assert file.framer.malformed == 1


# ── multiline ──────────────────────────────────────────────────────────────


def test_timestamp_start_joins_a_python_traceback_logged_by_the_app() -> None:
    framer = Framer("plain", multiline=TIMESTAMP_START)
    file = File(framer)
    assert file.feed("2026-11-23 10:00:00,001 INFO app: started") == []
    assert file.feed("2026-11-23 10:00:01,002 ERROR app: request failed") == [
        Record("2026-11-23 10:00:00,001 INFO app: started", {}, *file.span(0))
    ]
    assert file.feed(*PYTHON_TRACEBACK) == []
    records = file.feed("2026-11-23 10:00:02,003 INFO app: next request")
    assert records == [
        Record(
            "\n".join(["2026-11-23 10:00:01,002 ERROR app: request failed", *PYTHON_TRACEBACK]), {}, *file.span(1, 8)
        )
    ]
    assert framer.flush() == [Record("2026-11-23 10:00:02,003 INFO app: next request", {}, *file.span(9))]


def test_timestamp_start_joins_a_java_stack_trace() -> None:
    file = File(Framer("plain", multiline=TIMESTAMP_START))
    first = "2026-11-23T10:00:00.001Z ERROR [main] com.example.App - job failed"
    records = file.feed(first, *JAVA_TRACE, "2026-11-23T10:00:01.000Z INFO [main] com.example.App - retrying")
    assert records == [Record("\n".join([first, *JAVA_TRACE]), {}, *file.span(0, 6))]


def test_start_mode_lines_before_any_start_stand_alone() -> None:
    file = File(Framer("plain", multiline=TIMESTAMP_START))
    records = file.feed("banner line", "  indented too", "2026-11-23 10:00:00 first entry")
    assert records == [Record("banner line", {}, *file.span(0)), Record("  indented too", {}, *file.span(1))]
    assert file.framer.held_from() == file.span(2)[0]


def test_continuation_joins_a_bare_python_traceback_with_its_chained_cause() -> None:
    framer = Framer("plain", multiline=PYTHON_CONTINUATION)
    file = File(framer)
    assert file.feed("server starting", now=0.0) == []
    trace = [
        "Traceback (most recent call last):",
        '  File "/srv/app/main.py", line 3, in <module>',
        '    config["port"]',
        "KeyError: 'port'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        *PYTHON_TRACEBACK,
    ]
    # Seconds later: the line before was given out by its timeout, so the traceback opens its own event.
    assert file.feed(*trace, now=5.0) == [Record("server starting", {}, *file.span(0))]
    assert file.feed("server stopped", now=5.1) == [Record("\n".join(trace), {}, *file.span(1, len(trace)))]


def test_continuation_joins_a_bare_java_stack_trace() -> None:
    file = File(Framer("plain", multiline=JAVA_CONTINUATION))
    first = 'Exception in thread "main" java.lang.IllegalStateException: boom'
    records = file.feed(first, *JAVA_TRACE[1:], "next line")
    assert records == [Record("\n".join([first, *JAVA_TRACE[1:]]), {}, *file.span(0, 5))]


def test_max_lines_gives_the_event_out_and_the_rest_continues_in_a_fresh_one() -> None:
    settings = MultilineSettings(start=TIMESTAMP_START.start, max_lines=3)
    file = File(Framer("plain", multiline=settings))
    assert file.feed("2026-11-23 10:00:00 boom", "  at a") == []
    assert file.feed("  at b") == [Record("2026-11-23 10:00:00 boom\n  at a\n  at b", {}, *file.span(0, 2))]
    assert file.feed("  at c", "  at d") == []
    records = file.feed("2026-11-23 10:00:01 next")
    assert records == [Record("  at c\n  at d", {}, *file.span(3, 4))]


def test_event_is_due_timeout_after_its_last_line() -> None:
    settings = MultilineSettings(start=TIMESTAMP_START.start, timeout=1.0)
    framer = Framer("plain", multiline=settings)
    file = File(framer)
    assert framer.deadline() is None
    file.feed("2026-11-23 10:00:00 boom", now=10.0)
    assert framer.deadline() == 11.0
    file.feed("  at a", now=10.5)
    assert framer.deadline() == 11.5
    assert framer.due(11.4) == []
    assert framer.due(11.5) == [Record("2026-11-23 10:00:00 boom\n  at a", {}, *file.span(0, 1))]
    assert framer.deadline() is None
    assert framer.held_from() is None
    # A continuation after the timeout has no event to join: it stands alone.
    assert file.feed("  at late", now=20.0) == [Record("  at late", {}, *file.span(2))]


def test_feed_gives_out_what_became_due_on_a_quiet_stream() -> None:
    file = File(Framer("cri", multiline=TIMESTAMP_START))
    file.feed(cri("2026-11-23 10:00:00 ERROR failed", "stderr"), now=0.0)
    file.feed(cri("2026-11-23 10:00:00 INFO one", "stdout"), now=0.2)
    # stdout stays busy; stderr's event is given out once its timeout passes.
    records = file.feed(cri("2026-11-23 10:00:01 INFO two", "stdout"), now=1.1)
    assert [(r.text, r.start) for r in records] == [
        ("2026-11-23 10:00:00 ERROR failed", file.span(0)[0]),
        ("2026-11-23 10:00:00 INFO one", file.span(1)[0]),
    ]


def test_held_from_is_where_the_open_event_starts() -> None:
    framer = Framer("plain", multiline=TIMESTAMP_START)
    file = File(framer)
    file.feed("stray line")
    assert framer.held_from() is None
    file.feed("2026-11-23 10:00:00 boom", "  at a")
    assert framer.held_from() == file.span(1)[0]
    file.feed("2026-11-23 10:00:01 next")
    assert framer.held_from() == file.span(3)[0]
    framer.flush()
    assert framer.held_from() is None


def test_flush_gives_out_everything_held_in_file_order() -> None:
    framer = Framer("cri", multiline=TIMESTAMP_START)
    file = File(framer)
    file.feed(
        cri("2026-11-23 10:00:00 ERROR err event", "stderr"),
        cri("2026-11-23 10:00:00 INFO out event", "stdout"),
        cri("  stderr detail", "stderr"),
        cri("2026-11-23 10:00:01 INFO partial ", "stdout", "P"),
    )
    assert framer.flush() == [
        Record("2026-11-23 10:00:00 ERROR err event\n  stderr detail", out("stderr"), file.span(0)[0], file.span(2)[1]),
        Record("2026-11-23 10:00:00 INFO out event", out("stdout"), *file.span(1)),
        Record("2026-11-23 10:00:01 INFO partial ", out("stdout"), *file.span(3)),
    ]
    assert framer.held_from() is None
    assert framer.deadline() is None
    assert framer.flush() == []


def test_event_longer_than_max_bytes_is_cut_and_still_consumes_its_lines() -> None:
    file = File(Framer("plain", multiline=TIMESTAMP_START, max_bytes=300))
    head = "2026-11-23 10:00:00 boom"
    frames = [f"  at frame {n:04d}" for n in range(100)]
    records = file.feed(head, *frames, "2026-11-23 10:00:01 next")
    (record,) = records
    assert record.text == "\n".join([head, *frames])[:300] + CUT_MARKER
    assert (record.start, record.end) == file.span(0, 100)
    assert file.framer.cut == 1


def test_multiline_on_cri_keeps_stdout_and_stderr_events_apart() -> None:
    file = File(Framer("cri", multiline=TIMESTAMP_START))
    records = file.feed(
        cri("2026-11-23 10:00:00 ERROR worker crashed", "stderr"),
        cri("2026-11-23 10:00:00 INFO request ", "stdout", "P"),
        cri(PYTHON_TRACEBACK[0], "stderr"),
        cri("served", "stdout", "F"),
        cri(PYTHON_TRACEBACK[1], "stderr"),
        cri("  stdout detail", "stdout"),
        *[cri(line, "stderr") for line in PYTHON_TRACEBACK[2:]],
        cri("2026-11-23 10:00:01 INFO next", "stdout"),
        cri("2026-11-23 10:00:01 INFO restarted", "stderr"),
    )
    assert records == [
        Record(
            "2026-11-23 10:00:00 INFO request served\n  stdout detail", out("stdout"), file.span(1)[0], file.span(5)[1]
        ),
        Record(
            "\n".join(["2026-11-23 10:00:00 ERROR worker crashed", *PYTHON_TRACEBACK]),
            out("stderr"),
            file.span(0)[0],
            file.span(10)[1],
        ),
    ]
    assert file.framer.held_from() == file.span(11)[0]


@pytest.mark.parametrize(("multiline", "count"), [(None, 9), (TIMESTAMP_START, 6)])
def test_a_restart_from_held_from_loses_no_record(multiline: MultilineSettings | None, count: int) -> None:
    """Whenever the daemon dies, feeding again from ``held_from`` gives out every record not yet given out."""
    lines = [
        cri("2026-11-23 10:00:00 INFO one", "stdout"),
        cri("2026-11-23 10:00:00 ERROR failed", "stderr"),
        cri(PYTHON_TRACEBACK[0], "stderr"),
        cri("2026-11-23 10:00:00 INFO a long ", "stdout", "P"),
        cri(PYTHON_TRACEBACK[1], "stderr"),
        cri("line", "stdout"),
        cri("ValueError: ", "stderr", "P"),
        cri("2026-11-23 10:00:01 INFO two", "stdout"),
        cri("order has no lines", "stderr"),
        cri("2026-11-23 10:00:02 INFO three", "stdout"),
        cri("2026-11-23 10:00:02 INFO recovered", "stderr"),
    ]
    whole = File(Framer("cri", multiline=multiline))
    expected = whole.feed(*lines) + whole.framer.flush()
    assert len(expected) == count
    for crash in range(len(lines) + 1):
        before = File(Framer("cri", multiline=multiline))
        given_out = before.feed(*lines[:crash])
        held = before.framer.held_from()
        resume = next((n for n, (start, _) in enumerate(whole.spans) if start == held), crash)
        assert held is None or resume < crash, f"held_from {held} is not where a line starts"
        after = File(Framer("cri", multiline=multiline))
        after.spans = whole.spans[:resume]
        given_out += after.feed(*lines[resume:]) + after.framer.flush()
        for record in expected:
            assert record in given_out, f"crash after {crash} lines lost {record}"


# ── settings ───────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"start": re.compile("a"), "continuation": re.compile("b")},
        {"start": re.compile("a"), "max_lines": 0},
        {"start": re.compile("a"), "timeout": -1.0},
    ],
)
def test_multiline_settings_refuse_what_cannot_work(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="multiline"):
        MultilineSettings(**kwargs)  # type: ignore[arg-type]


def test_framer_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format 'syslog'"):
        Framer("syslog")  # type: ignore[arg-type]
