"""Command line: arguments → config → app, and the exit codes.

Exit codes: 0 success; 1 runtime failure; 2 usage error (argparse); 78
(EX_CONFIG) for an invalid config or rule file, and for a webhook Discord
says does not exist, so systemd and Kubernetes show a config problem instead
of restarting into the same failure.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import logging
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tailhook import __version__, _logs, rule_lint, rule_test, silence_admin, spool_admin
from tailhook._units import parse_duration
from tailhook.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_MAX_LINE_BYTES,
    ENGINE_CHOICES,
    EX_CONFIG,
    Config,
    ConfigError,
    FileSourceConfig,
    JournaldSourceConfig,
    MatchingConfig,
    RuleConfig,
    StormConfig,
    journal_reader,
    load_config,
    load_rules,
)
from tailhook.engines import EngineUnavailable
from tailhook.events import Severity
from tailhook.rules import rule_set
from tailhook.spool_admin import Selection, SpoolAdminError

__all__ = ["main"]

log = logging.getLogger("tailhook")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _logs.setup(args.log_level, args.log_format)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tailhook",
        description="Watch logs, match rules, send alerts to Discord.",
    )
    parser.add_argument("--version", action="version", version=f"tailhook {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    _add_config_argument(common)
    _add_log_level_argument(common)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    run = commands.add_parser("run", parents=[common], help="run the daemon in the foreground")
    run.add_argument(
        "--dry-run",
        action="store_true",
        default=_env_flag("TAILHOOK_DRY_RUN"),
        help="print every alert to stdout instead of sending it (also: TAILHOOK_DRY_RUN=1)",
    )
    run.set_defaults(command=_run)

    check = commands.add_parser("check", parents=[common], help="validate the config and every rule file")
    check.add_argument("--probe", action="store_true", help="also ask Discord whether each webhook exists")
    check.set_defaults(command=_check)

    _add_test_command(commands, common)
    _add_spool_commands(commands)
    _add_silence_commands(commands)
    return parser


def _add_config_argument(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help=f"config file (default: $TAILHOOK_CONFIG, else {DEFAULT_CONFIG_PATH})",
    )


def _add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=os.environ.get("TAILHOOK_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="how much tailhook logs to stderr (default: info, or $TAILHOOK_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        default=os.environ.get("TAILHOOK_LOG_FORMAT", "text"),
        choices=_logs.FORMATS,
        help="text, or json: one object per line (default: text, or $TAILHOOK_LOG_FORMAT)",
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _config_path(args: argparse.Namespace) -> str:
    return str(args.config or os.environ.get("TAILHOOK_CONFIG") or DEFAULT_CONFIG_PATH)


def _load(args: argparse.Namespace) -> Config | None:
    try:
        return load_config(_config_path(args))
    except ConfigError as exc:
        _print_problems(exc)
        return None


def _print_problems(exc: ConfigError) -> None:
    count = len(exc.problems)
    print(f"tailhook: {count} problem{'s' if count != 1 else ''} in the configuration:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EX_CONFIG
    try:
        # The rules compile (Hyperscan lets go of the GIL) while the daemon's modules load.
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rules") as building:
            rules = building.submit(rule_set, config, host=config.host)
            from tailhook.app import App  # noqa: PLC0415 - the daemon's imports (aiohttp) only for the daemon

            app = App(config, dry_run=args.dry_run, rules=rules.result())
        return asyncio.run(app.run())
    except Exception:
        log.exception("tailhook stopped on an unexpected error")
        return 1


def _check(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EX_CONFIG
    disabled = sum(not rule.enabled for rule in config.rules)
    print(
        f"{config.path}: OK: {len(config.sources)} sources, {len(config.rules)} rules"
        f"{f' ({disabled} disabled)' if disabled else ''}, {len(config.destinations)} destinations"
    )
    for warning in rule_lint.lint(config.rules, line_budget_s=config.matching.line_budget):
        print(f"warning: {warning}", file=sys.stderr)
    for source in config.sources:
        if isinstance(source, JournaldSourceConfig):  # the config would not load without a reader
            reader = journal_reader(source.reader)
            why = " (systemd-python is not installed)" if reader == "journalctl" and source.reader == "auto" else ""
            print(f"source {source.name}: reads the journal through {reader}{why}")
    if not args.probe:
        return 0
    return asyncio.run(_probe(config))


async def _probe(config: Config) -> int:
    import aiohttp  # noqa: PLC0415 - only `check --probe` talks to Discord

    from tailhook.app import probe_destinations  # noqa: PLC0415

    async with aiohttp.ClientSession(headers={"User-Agent": f"tailhook/{__version__}"}) as session:
        results = await probe_destinations(config, session=session)
    code = 0
    for result in results:
        status = "ok" if result.ok else ("DEAD" if result.dead else "unreachable")
        print(f"  destination {result.destination}: {status}: {result.detail}")
        if result.dead:
            code = EX_CONFIG
        elif not result.ok and code == 0:
            code = 1
    return code


# ── tailhook test ───────────────────────────────────────────────────────────

_TEST_HELP = """\
Run the rules over log files (or standard input), offline, and report per rule
the lines matched, sample matches with their captures, title and key, and the
speed. gzip files are read as they are. A file's lines belong to the source of
the config whose paths name it (or --source); lines of no known source meet
every rule. With --expect, compare with an expectation file and fail on any
difference."""


def _add_test_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    test = commands.add_parser(
        "test",
        parents=[common],
        help="run the rules over log files, offline, and report what they match",
        description=_TEST_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("logfiles", nargs="*", metavar="LOGFILE", help="log files to read; - for standard input")
    test.add_argument(
        "--rules", action="append", metavar="FILE", help="rule files (globs too) instead of the config's; repeatable"
    )
    test.add_argument("--source", metavar="NAME", help="the source the lines come from (its rules apply)")
    test.add_argument("--host", metavar="NAME", help="the {host} of templates (default: the config's)")
    test.add_argument("--engine", choices=ENGINE_CHOICES, help="the matching engine (default: the config's)")
    test.add_argument("--samples", type=_count, default=3, metavar="N", help="sample matches per rule (default: 3)")
    test.add_argument("--unmatched", action="store_true", help="print the lines no rule matched")
    test.add_argument("--json", action="store_true", help="print JSON for machines")
    test.add_argument(
        "--expect", type=Path, metavar="FILE", help="an expectation file: fail unless the matches are exactly these"
    )
    test.add_argument(
        "--storm",
        action="store_true",
        help="show what storm control would have sent, each line at the time it names (ISO 8601, syslog, "
        "common log format)",
    )
    test.add_argument("--rate", type=_rate, metavar="N", help="with --storm: line n at n/N seconds instead")
    test.add_argument(
        "--jobs",
        type=_jobs,
        metavar="N",
        help="processes that match at once (default: one per CPU; --expect, --storm and --unmatched take one)",
    )
    test.set_defaults(command=_test)


def _test(args: argparse.Namespace) -> int:
    inputs = _test_inputs(args)
    if isinstance(inputs, int):
        return inputs
    config, rules, expectation, files = inputs
    host = args.host or (expectation.host if expectation else None) or (config.host if config else socket.gethostname())
    matching = config.matching if config else MatchingConfig()
    try:
        report = rule_test.run(
            rules,
            files,
            host=host,
            engine=args.engine or matching.engine,
            line_budget_s=matching.line_budget,
            samples=args.samples,
            keep_matches=expectation is not None,
            unmatched=sys.stdout if args.unmatched and not args.json else None,
            storm=rule_test.StormReplay(config.storm if config else StormConfig(), host=host, rate=args.rate)
            if args.storm or args.rate
            else None,
            jobs=args.jobs or rule_test.jobs_available(),
            cache=rule_test.cache_folder(),
        )
    except OSError as exc:
        print(f"tailhook: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    except EngineUnavailable as exc:
        print(f"tailhook: {exc}", file=sys.stderr)
        return EX_CONFIG
    problems = rule_test.differences(expectation.matches, report.matches) if expectation else []
    if args.json:
        found = report.as_json()
        if expectation is not None:
            found["differences"] = problems
        _print_json(found)
    else:
        print(rule_test.render(report, samples=args.samples))
        if expectation is not None:
            print()
            for problem in problems:
                print(f"  {problem}")
            verdict = f"{len(problems)} differences" if problems else f"all {len(report.matches)} matches as expected"
            print(f"{args.expect}: {verdict}")
    return 1 if problems else 0


_TestInputs = tuple[Config | None, tuple[RuleConfig, ...], rule_test.Expectation | None, list[rule_test.LogFile]]


def _test_inputs(args: argparse.Namespace) -> _TestInputs | int:
    """The config (when there is one), the rules, the expectation and the files; or the exit code."""
    explicit = bool(args.config or os.environ.get("TAILHOOK_CONFIG"))
    config = _load(args) if explicit or not args.rules else None
    if (explicit or not args.rules) and config is None:
        return EX_CONFIG
    rules = config.rules if config is not None else ()
    if args.rules:
        try:
            rules = load_rules(args.rules, config.sources if config else None)
        except ConfigError as exc:
            _print_problems(exc)
            return EX_CONFIG
    expectation = None
    if args.expect is not None:
        try:
            expectation = rule_test.load_expectation(args.expect)
        except ValueError as exc:
            print(f"tailhook: {exc}", file=sys.stderr)
            return 1
    files = _test_files(args, config, expectation)
    if not files:
        print("tailhook test: name a LOGFILE (or - for standard input), or --expect FILE", file=sys.stderr)
        return 2
    return config, rules, expectation, files


def _test_files(
    args: argparse.Namespace, config: Config | None, expectation: rule_test.Expectation | None
) -> list[rule_test.LogFile]:
    if not args.logfiles and expectation is not None:
        return expectation.files
    limits = {s.name: s.max_line_bytes for s in config.sources if isinstance(s, FileSourceConfig)} if config else {}
    files = []
    for path in args.logfiles:
        source = args.source or rule_test.source_of(path, config)
        files.append(rule_test.LogFile(path, path, source, limits.get(source, DEFAULT_MAX_LINE_BYTES)))
    return files


# ── tailhook spool ──────────────────────────────────────────────────────────

_SPOOL_HELP = """\
Inspect and repair the spool (state_dir/spool.sqlite3), also while tailhook runs.
Waiting notifications and dead letters are listed oldest first; ages of dead
letters count from when they failed. Retried dead letters get new ids at the
end of their destination's queue."""


def _spool_actions(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
) -> Callable[[str, str], argparse.ArgumentParser]:
    """How a command that works on the spool file adds an action: each takes -c (or --state-dir)
    and --log-level."""
    where = argparse.ArgumentParser(add_help=False)
    which = where.add_mutually_exclusive_group()
    _add_config_argument(which)
    which.add_argument("--state-dir", metavar="DIR", type=Path, help="the spool in DIR; the config is not read")
    _add_log_level_argument(where)

    def add(name: str, summary: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=[where], help=summary, description=summary)

    return add


def _add_spool_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    spool = commands.add_parser(
        "spool",
        help="inspect and repair the spool and its dead letters",
        description=_SPOOL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = spool.add_subparsers(title="spool commands", metavar="ACTION", required=True)
    add = _spool_actions(actions)

    status = add("status", "how much waits, per destination and severity; dead letters; drops; sizes")
    status.add_argument("--json", action="store_true", help="print JSON for machines")
    status.set_defaults(command=_SpoolCommand(status, _spool_status))

    listing = add("list", "one line per waiting notification (or dead letter), oldest first")
    _add_filters(listing, older_than=False)
    kind = listing.add_mutually_exclusive_group()
    kind.add_argument("--dead", action="store_true", help="list the dead letters instead")
    kind.add_argument(
        "--summarised", action="store_true", help="list the alerts summed up in floods instead (kept for a day)"
    )
    listing.add_argument("--limit", type=_count, default=100, metavar="N", help="show at most N (default: 100; 0: all)")
    listing.add_argument("--json", action="store_true", help="print JSON for machines, fields uncut")
    listing.set_defaults(command=_SpoolCommand(listing, _spool_list))

    show = add("show", "everything about one notification (or dead letter)")
    show.add_argument("id", type=_row_id, metavar="ID")
    show.add_argument("--dead", action="store_true", help="ID is a dead letter")
    show.add_argument("--json", action="store_true", help="print JSON for machines")
    show.set_defaults(command=_SpoolCommand(show, _spool_show))

    retry = add("retry", "move dead letters back to the end of their destination's queue, attempts reset")
    retry.add_argument("ids", nargs="*", type=_row_id, metavar="ID", help="dead letters to retry")
    retry.add_argument("--all", action="store_true", help="every dead letter (of --destination)")
    retry.add_argument("--destination", metavar="NAME", help="with --all: only this destination's")
    retry.set_defaults(command=_SpoolCommand(retry, _spool_retry, _check_retry))

    drop = add("drop", "delete waiting notifications: by id, or all that the filters pick")
    drop.add_argument("ids", nargs="*", type=_row_id, metavar="ID", help="notifications to drop")
    _add_filters(drop, older_than=True)
    drop.set_defaults(command=_SpoolCommand(drop, _spool_drop, _check_drop))

    purge = add("purge", "delete dead letters: all (with --yes), or those that failed longer ago than --older-than")
    purge.add_argument("--dead", action="store_true", help="dead letters: what purge deletes (for clarity)")
    purge.add_argument("--older-than", type=_duration, metavar="DURATION", help="only those that failed before")
    purge.add_argument("--yes", action="store_true", help="yes, delete every dead letter")
    purge.set_defaults(command=_SpoolCommand(purge, _spool_purge, _check_purge))


def _add_filters(parser: argparse.ArgumentParser, *, older_than: bool) -> None:
    parser.add_argument("--destination", metavar="NAME", help="only this destination's")
    parser.add_argument("--severity", type=_severity, metavar="SEVERITY", help="only this severity (e.g. info, P3)")
    if older_than:
        parser.add_argument(
            "--older-than", type=_duration, metavar="DURATION", help="only those stored longer ago (e.g. 1h, 2d)"
        )


def _severity(text: str) -> Severity:
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _row_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (a whole number from 1)")
    return int(text)


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if rate <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate (lines per second, more than 0)")
    return rate


def _jobs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (a whole number from 1)")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (a whole number, 0 for all)")
    return int(text)


@dataclass(frozen=True, slots=True)
class _SpoolCommand:
    """One ``tailhook spool`` command: its argument checks, then its work on the open spool.

    A failed check is a usage error (exit 2); a spool that cannot be opened or
    a refusal from the work exits 1; a config that does not load exits 78.
    """

    parser: argparse.ArgumentParser
    work: Callable[[sqlite3.Connection, Path, argparse.Namespace], int]
    check: Callable[[argparse.Namespace], str | None] = lambda args: None

    def __call__(self, args: argparse.Namespace) -> int:
        problem = self.check(args)
        if problem is not None:
            self.parser.error(problem)
        state_dir = _state_dir(args)
        if state_dir is None:
            return EX_CONFIG
        try:
            with spool_admin.connect(state_dir) as db:
                return self.work(db, spool_admin.spool_path(state_dir), args)
        except SpoolAdminError as exc:
            print(f"tailhook: {exc}", file=sys.stderr)
            return 1


def _state_dir(args: argparse.Namespace) -> Path | None:
    """``--state-dir``, else the config's ``state_dir``; ``None`` when the config does not load."""
    if args.state_dir is not None:
        return Path(args.state_dir)
    config = _load(args)
    return None if config is None else config.state_dir


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(args.destination, args.severity, getattr(args, "older_than", None))


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _spool_status(db: sqlite3.Connection, path: Path, args: argparse.Namespace) -> int:
    now = time.time()
    report = spool_admin.status(db, path)
    if args.json:
        _print_json(spool_admin.status_json(report, path, now=now))
    else:
        print(spool_admin.render_status(report, path, now=now))
    return 0


def _spool_list(db: sqlite3.Connection, path: Path, args: argparse.Namespace) -> int:
    now, selection, limit = time.time(), _selection(args), args.limit or None
    with spool_admin.snapshot(db):
        if args.summarised:
            summed = spool_admin.summarised(db, selection, now=now, limit=limit)
            total = spool_admin.count_summarised(db, selection, now=now)
            rows = [spool_admin.summarised_json(item) for item in summed]
            table = spool_admin.render_summarised(summed, now=now)
        elif args.dead:
            letters = spool_admin.dead_letters(db, selection, now=now, limit=limit)
            total = spool_admin.count_dead_letters(db, selection, now=now)
            rows = [spool_admin.dead_letter_json(letter) for letter in letters]
            table = spool_admin.render_dead_letters(letters, now=now)
        else:
            items = spool_admin.waiting(db, selection, now=now, limit=limit)
            total = spool_admin.count_waiting(db, selection, now=now)
            rows = [spool_admin.waiting_json(item) for item in items]
            table = spool_admin.render_waiting(items, now=now)
    if args.json:
        _print_json(rows)
    elif not rows:
        empty = "nothing summed up" if args.summarised else "no dead letters" if args.dead else "nothing waiting"
        print(empty, "(with these filters)" if selection else "")
    else:
        print(table)
        if total > len(rows):
            print(f"… {len(rows)} of {total} shown; --limit 0 shows all")
    return 0


def _spool_show(db: sqlite3.Connection, path: Path, args: argparse.Namespace) -> int:
    now = time.time()
    if args.dead:
        letter = spool_admin.dead_letter(db, args.id)
        if letter is None:
            other = spool_admin.waiting_notification(db, args.id) is not None
            raise SpoolAdminError(f"no dead letter {args.id}" + (" (it is waiting: leave out --dead)" if other else ""))
        found = spool_admin.dead_letter_json(letter)
        text = spool_admin.render_dead_letter(letter, now=now)
    else:
        item = spool_admin.waiting_notification(db, args.id)
        if item is None:
            other = spool_admin.dead_letter(db, args.id) is not None
            hint = " (it is a dead letter: add --dead)" if other else " (delivered, dropped, or never stored)"
            raise SpoolAdminError(f"no waiting notification {args.id}{hint}")
        found = spool_admin.waiting_json(item)
        text = spool_admin.render_waiting_notification(item, now=now)
    if args.json:
        _print_json(found)
    else:
        print(text)
    return 0


def _check_retry(args: argparse.Namespace) -> str | None:
    if bool(args.ids) == args.all:
        return "say which dead letters to retry: their IDs, or --all"
    if args.destination is not None and not args.all:
        return "--destination goes with --all"
    return None


def _spool_retry(db: sqlite3.Connection, path: Path, args: argparse.Namespace) -> int:
    now = time.time()
    if args.all:
        moved = spool_admin.retry_all(db, destination=args.destination, now=now)
    else:
        moved = spool_admin.retry(db, args.ids, now=now)
    for letter_id, new_id in moved:
        print(f"dead letter {letter_id} is waiting again as notification {new_id}")
    print(f"retried {spool_admin.plural(len(moved), 'dead letter')}")
    return 0


def _check_drop(args: argparse.Namespace) -> str | None:
    if args.ids and _selection(args):
        return "give IDs or filters (--destination, --severity, --older-than), not both"
    if not args.ids and not _selection(args):
        return "say what to drop: IDs, or --destination, --severity and/or --older-than (nothing is dropped by default)"
    return None


def _spool_drop(db: sqlite3.Connection, path: Path, args: argparse.Namespace) -> int:
    selection = _selection(args)
    count = spool_admin.drop(db, selection, now=time.time()) if selection else spool_admin.drop_ids(db, args.ids)
    print(f"dropped {spool_admin.plural(count, 'notification')}")
    return 0


def _check_purge(args: argparse.Namespace) -> str | None:
    if args.older_than is None and not args.yes:
        return "purging every dead letter needs --yes (or choose some with --older-than)"
    return None


def _spool_purge(db: sqlite3.Connection, path: Path, args: argparse.Namespace) -> int:
    count = spool_admin.purge(db, older_than_s=args.older_than, now=time.time())
    print(f"purged {spool_admin.plural(count, 'dead letter')}")
    return 0


# ── tailhook silence ────────────────────────────────────────────────────────

_SILENCE_HELP = """\
Silence alerts while tailhook runs: they are counted, not sent, and when the
silence ends one note says what it held. Critical alerts pass unless
--severity critical is given. Silences of the config file (silences:) are
listed with -c; those added here are stored in the spool."""


def _add_silence_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    silence = commands.add_parser(
        "silence",
        help="add, list and expire silences, also while the daemon runs",
        description=_SILENCE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = silence.add_subparsers(title="silence commands", metavar="ACTION", required=True)
    add = _spool_actions(actions)

    adding = add("add", "silence the alerts of rules, sources, hosts or severities, from now")
    adding.add_argument("--rule", action="append", metavar="NAME", help="this rule's alerts (repeatable)")
    adding.add_argument("--source", action="append", metavar="NAME", help="this source's alerts (repeatable)")
    adding.add_argument("--host", action="append", metavar="NAME", help="this host's alerts (repeatable)")
    adding.add_argument(
        "--severity", action="append", type=_severity, metavar="SEVERITY", help="alerts of this severity (repeatable)"
    )
    until = adding.add_mutually_exclusive_group(required=True)
    until.add_argument("--for", dest="duration", type=_positive_duration, metavar="DURATION", help="e.g. 30m, 2h")
    until.add_argument("--until", metavar="TIME", help="HH:MM (the next one) or ISO 8601, e.g. 2025-06-01T22:00+02:00")
    adding.add_argument("--reason", required=True, type=_text, metavar="TEXT", help="why: the end note names it")
    adding.add_argument("--json", action="store_true", help="print the silence as JSON")
    adding.set_defaults(command=_SilenceCommand(adding, silence_admin.run_add, _check_silence_add))

    listing = add("list", "the silences on now or to come, with what each has held")
    listing.add_argument("--json", action="store_true", help="print JSON for machines")
    listing.set_defaults(command=_SilenceCommand(listing, silence_admin.run_list))

    expire = add("expire", "end a silence added with `silence add` now")
    expire.add_argument("id", metavar="ID", help="its id, e.g. cli:3")
    expire.set_defaults(command=_SilenceCommand(expire, silence_admin.run_expire))


def _positive_duration(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not longer than zero")
    return seconds


def _text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _check_silence_add(args: argparse.Namespace) -> str | None:
    if not (args.rule or args.source or args.host or args.severity):
        return "say what to silence: --rule, --source, --host and/or --severity"
    return None


@dataclass(frozen=True, slots=True)
class _SilenceCommand:
    """One ``tailhook silence`` command: as ``_SpoolCommand``, with the config when it is read (not with
    ``--state-dir``). A request that cannot be (an unknown rule, a time past) is a usage error (exit 2)."""

    parser: argparse.ArgumentParser
    work: Callable[[sqlite3.Connection, argparse.Namespace, Config | None, float], str]
    check: Callable[[argparse.Namespace], str | None] = lambda args: None

    def __call__(self, args: argparse.Namespace) -> int:
        problem = self.check(args)
        if problem is not None:
            self.parser.error(problem)
        config = None
        if args.state_dir is None:
            config = _load(args)
            if config is None:
                return EX_CONFIG
        state_dir = Path(args.state_dir) if config is None else config.state_dir
        try:
            with spool_admin.connect(state_dir) as db:
                print(self.work(db, args, config, time.time()))
        except silence_admin.SilenceUsageError as exc:
            self.parser.error(str(exc))
        except SpoolAdminError as exc:
            print(f"tailhook: {exc}", file=sys.stderr)
            return 1
        return 0
