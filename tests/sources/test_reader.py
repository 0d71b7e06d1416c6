"""The file source's read path on plain bytes: lines, runs of lines, cut lines, padding, offsets."""

from __future__ import annotations

import random

import pytest

from tailhook.sources.reader import LineCutter, RawLine, Run


def lines_of(pieces: list[RawLine | Run]) -> list[tuple[bytes, bool, int, int]]:
    """Every line as (bytes, cut, start, end), runs taken apart."""
    found = []
    for piece in pieces:
        if isinstance(piece, Run):
            at = piece.start
            for raw in piece.data.split(b"\n")[:-1]:
                found.append((raw, False, at, at + len(raw) + 1))
                at += len(raw) + 1
            assert at == piece.end and piece.lines == piece.data.count(b"\n")
        else:
            found.append((piece.raw, piece.cut, piece.start, piece.end))
    return found


def feed(cutter: LineCutter, data: bytes, sizes: list[int]) -> list[RawLine | Run]:
    pieces: list[RawLine | Run] = []
    at = 0
    for size in sizes:
        pieces += cutter.split(data[at : at + size])
        at += size
    pieces += cutter.split(data[at:])
    last = cutter.flush()
    return pieces + ([last] if last else [])


def test_whole_lines_come_as_one_run_and_the_rest_waits() -> None:
    cutter = LineCutter(max_line_bytes=100, runs=True)
    pieces = cutter.split(b"one\ntwo\r\nthree\npart")
    assert pieces == [Run(b"one\ntwo\r\nthree\n", 0)]
    assert (cutter.offset, cutter.position, bytes(cutter.partial)) == (19, 15, b"part")
    assert cutter.split(b"ial\nfour\n") == [Run(b"partial\nfour\n", 15)]  # the head waited, then led the run
    assert cutter.flush() is None


def test_a_line_split_by_a_chunk_end_stays_in_the_run_up_to_the_limit_and_no_further() -> None:
    cutter = LineCutter(max_line_bytes=10, runs=True)
    assert cutter.split(b"a\nabcdefgh") == [Run(b"a\n", 0)]
    assert cutter.split(b"ij\nnext\n") == [Run(b"abcdefghij\nnext\n", 2)]  # 10 bytes: whole
    assert cutter.split(b"abcdefgh") == []
    assert cutter.split(b"ijk\nnext\n") == [RawLine(b"abcdefghij", 18, 30, cut=True), Run(b"next\n", 30)]
    assert (cutter.offset, cutter.position) == (35, 35)


def test_an_over_long_line_inside_a_run_is_cut_and_the_run_goes_on() -> None:
    cutter = LineCutter(max_line_bytes=8, runs=True)
    pieces = cutter.split(b"short\n" + b"x" * 20 + b"\nafter\nok\n")
    assert pieces == [
        Run(b"short\n", 0),
        RawLine(b"x" * 8, 6, 27, cut=True),
        Run(b"after\nok\n", 27),
    ]


def test_a_line_exactly_at_the_limit_is_whole() -> None:
    cutter = LineCutter(max_line_bytes=5, runs=True)
    assert cutter.split(b"12345\n123456\n") == [Run(b"12345\n", 0), RawLine(b"12345", 6, 13, cut=True)]


def test_an_over_long_line_without_its_newline_is_cut_and_skipped_as_it_comes() -> None:
    cutter = LineCutter(max_line_bytes=10, runs=True)
    assert cutter.split(b"a\n" + b"y" * 15) == [Run(b"a\n", 0), RawLine(b"y" * 10, 2, 17, cut=True)]
    assert cutter.skipping
    assert cutter.split(b"y" * 1000) == []
    assert len(cutter.partial) == 0  # memory stays bounded
    assert cutter.split(b"yy\nnext\n") == [Run(b"next\n", 1020)]
    assert (cutter.offset, cutter.skipping) == (1025, False)


def test_padding_after_a_truncation_is_dropped_line_by_line() -> None:
    cutter = LineCutter(max_line_bytes=100, runs=True)
    cutter.restart(0, padding=True)
    assert cutter.split(b"\0\0\0\0first\nsecond\n") == [RawLine(b"first", 0, 10), Run(b"second\n", 10)]


def test_without_runs_every_line_is_its_own() -> None:
    cutter = LineCutter(max_line_bytes=100)
    assert cutter.split(b"a\nb\n") == [RawLine(b"a", 0, 2), RawLine(b"b", 2, 4)]


def test_a_last_line_without_newline_is_flushed() -> None:
    cutter = LineCutter(max_line_bytes=100, runs=True)
    assert cutter.split(b"done\nlast") == [Run(b"done\n", 0)]
    assert cutter.flush() == RawLine(b"last", 5, 9)
    assert cutter.position == cutter.offset == 9


@pytest.mark.parametrize("seed", range(25))
def test_runs_give_exactly_the_lines_one_by_one_gives(seed: int) -> None:
    """Whatever the bytes and however they are chunked, runs change nothing but the shape."""
    rng = random.Random(seed)
    parts = []
    for _ in range(rng.randrange(1, 120)):
        kind = rng.random()
        if kind < 0.05:
            parts.append(b"z" * rng.randrange(30, 200))  # over the limit
        elif kind < 0.1:
            parts.append(b"")
        else:
            parts.append(bytes(rng.choice(b"ab \t\r\0\xc3\xa9") for _ in range(rng.randrange(0, 30))))
    data = b"\n".join(parts) + (b"\n" if rng.random() < 0.5 else b"")
    sizes = [rng.randrange(1, 64) for _ in range(rng.randrange(0, 20))]
    padding = rng.random() < 0.3

    one_by_one = LineCutter(max_line_bytes=32)
    runs = LineCutter(max_line_bytes=32, runs=True)
    one_by_one.restart(0, padding=padding)
    runs.restart(0, padding=padding)
    expected = feed(one_by_one, data, sizes)
    assert all(isinstance(piece, RawLine) for piece in expected)
    assert lines_of(feed(runs, data, sizes)) == lines_of(expected)
    assert runs.offset == one_by_one.offset == len(data)
