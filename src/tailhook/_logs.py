"""How tailhook logs: text for people and journald, or one JSON object per line for Loki and
Elasticsearch (``--log-format json``). Messages are the same either way, and never hold a secret
(webhook URLs log as their redacted form)."""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys

__all__ = ["FORMATS", "JsonFormatter", "setup"]

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` and, for an error with a traceback, ``"exception"``;
    the time in UTC, ISO 8601 with milliseconds."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(level: str, form: str = "text") -> None:
    """Log at *level* to stderr, as *form* (one of ``FORMATS``)."""
    handler = logging.StreamHandler(sys.stderr)
    if form == "json":
        handler.setFormatter(JsonFormatter())
    elif "JOURNAL_STREAM" in os.environ:  # journald stamps lines itself
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it logs every change at INFO
