"""Command line: arguments → config → app, and the exit codes.

Exit codes: 0 success; 1 runtime failure; 2 usage error (argparse); 78
(EX_CONFIG) for an invalid config or rule file, and for a webhook Discord
says does not exist, so systemd and Kubernetes show a config problem instead
of restarting into the same failure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence

import aiohttp

from tailhook import __version__
from tailhook.app import EX_CONFIG, App, probe_destinations
from tailhook.config import DEFAULT_CONFIG_PATH, Config, ConfigError, JournaldSourceConfig, load_config
from tailhook.sources.journald import journald_available

__all__ = ["main"]

log = logging.getLogger("tailhook")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.log_level)
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
    common.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help=f"config file (default: $TAILHOOK_CONFIG, else {DEFAULT_CONFIG_PATH})",
    )
    common.add_argument(
        "--log-level",
        default=os.environ.get("TAILHOOK_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="how much tailhook logs to stderr (default: info, or $TAILHOOK_LOG_LEVEL)",
    )
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
    return parser


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _setup_logging(level: str) -> None:
    under_systemd = "JOURNAL_STREAM" in os.environ  # journald stamps lines itself
    fmt = "%(levelname)s %(name)s: %(message)s" if under_systemd else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it logs every change at INFO


def _config_path(args: argparse.Namespace) -> str:
    return str(args.config or os.environ.get("TAILHOOK_CONFIG") or DEFAULT_CONFIG_PATH)


def _load(args: argparse.Namespace) -> Config | None:
    try:
        return load_config(_config_path(args))
    except ConfigError as exc:
        count = len(exc.problems)
        print(f"tailhook: {count} problem{'s' if count != 1 else ''} in the configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def _run(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EX_CONFIG
    try:
        return asyncio.run(App(config, dry_run=args.dry_run).run())
    except Exception:
        log.exception("tailhook stopped on an unexpected error")
        return 1


def _check(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EX_CONFIG
    print(
        f"{config.path}: OK: {len(config.sources)} sources, {len(config.rules)} rules, "
        f"{len(config.destinations)} destinations"
    )
    journald = [s.name for s in config.sources if isinstance(s, JournaldSourceConfig)]
    if journald and not journald_available():
        print(
            f"warning: source {', '.join(journald)} cannot read the journal: systemd-python is not installed "
            "(pip install 'tailhook[journald]')",
            file=sys.stderr,
        )
    if not args.probe:
        return 0
    return asyncio.run(_probe(config))


async def _probe(config: Config) -> int:
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
