"""A progress line for long ingests, on a terminal only.

:class:`Progress` rewrites one line of standard error (``\\r``) at most
:data:`REFRESH_SECONDS` apart: the phase, the file, rows so far and their
rate. It is silent when standard error is not a terminal or the ``CI``
environment variable is set, so scripts, logs and CI stay clean;
``okg ingest --progress`` / ``--no-progress`` override.
"""

import os
import sys
import time

#: least time between two redraws of the progress line
REFRESH_SECONDS = 0.2


def wanted(stream=None):
    """Whether a progress line suits ``stream``: a terminal, and not a CI run."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("CI")


class Progress:
    def __init__(self, enabled=None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = wanted(self.stream) if enabled is None else enabled
        self.started = time.monotonic()
        self.last = 0.0
        self.width = 0

    def show(self, text, force=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < REFRESH_SECONDS:
            return
        self.last = now
        line = f"{text} ({now - self.started:.0f} s)"
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def rows(self, name, count, total):
        """``count`` rows of file ``name`` read, ``total`` of all files so far."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        self.show(f"reading {name}: row {count:,} ({total:,} rows in all, {total / elapsed:,.0f} rows/s)")

    def phase(self, text):
        self.show(text, force=True)

    def close(self):
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
