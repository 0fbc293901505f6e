"""JSON log lines: one object per line, the record's ``extra`` fields included."""

from __future__ import annotations

import datetime as dt
import logging

import orjson

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# A line never shows where it was logged from, nor the thread or process, so
# records need not gather them: that is a stack walk and a getpid system
# call per line, and the relay logs a line per request. (The logging docs'
# "Optimization" section names these switches.)
logging._srcfile = None
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()
