"""What a person sees while the agent runs: rich progress bars on a terminal (one per file, and
the whole run), otherwise one log line per event, as text or as JSON."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Reporter(Protocol):
    def event(self, kind: str, message: str, **fields: Any) -> None: ...
    def file_started(self, asset_id: str, name: str, total: int | None) -> None: ...
    def file_advanced(self, asset_id: str, n: int) -> None: ...
    def file_ended(self, asset_id: str) -> None: ...
    def close(self) -> None: ...


class LogLines:
    """One line per event on `stream`: `time kind message key=value...`, or a JSON object."""

    def __init__(self, stream: IO[str] | None = None, *, as_json: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.as_json = as_json
        self._lock = threading.Lock()

    def event(self, kind: str, message: str, **fields: Any) -> None:
        time = datetime.now(UTC).isoformat(timespec="milliseconds")
        if self.as_json:
            line = json.dumps({"time": time, "event": kind, "message": message, **fields})
        else:
            extra = " ".join(f"{key}={value}" for key, value in fields.items())
            line = f"{time} {kind} {message}" + (f" ({extra})" if extra else "")
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def file_started(self, asset_id: str, name: str, total: int | None) -> None:
        pass

    def file_advanced(self, asset_id: str, n: int) -> None:
        pass

    def file_ended(self, asset_id: str) -> None:
        pass

    def close(self) -> None:
        pass


class Bars(LogLines):
    """Rich progress bars: one per file in flight and one for the run; events print above."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self.console = console or Console(stderr=True, log_path=False)
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.overall = self.progress.add_task("all files", total=0)
        self._tasks: dict[str, TaskID] = {}
        self.progress.start()

    def event(self, kind: str, message: str, **fields: Any) -> None:
        self.console.log(f"[bold]{kind}[/bold] {message}", markup=True, highlight=False)

    def file_started(self, asset_id: str, name: str, total: int | None) -> None:
        with self._lock:
            self._tasks[asset_id] = self.progress.add_task(name[:40], total=total)
            overall = self._task(self.overall)
            self.progress.update(self.overall, total=(overall.total or 0) + (total or 0))

    def file_advanced(self, asset_id: str, n: int) -> None:
        task = self._tasks.get(asset_id)
        if task is not None:
            self.progress.advance(task, n)
        self.progress.advance(self.overall, n)

    def file_ended(self, asset_id: str) -> None:
        with self._lock:
            task = self._tasks.pop(asset_id, None)
            if task is None:
                return
            # The expected size was a guess: the run's total keeps only what was written.
            ended = self._task(task)
            unwritten = (ended.total or 0) - ended.completed
            overall = self._task(self.overall)
            self.progress.update(self.overall, total=(overall.total or 0) - unwritten)
            self.progress.remove_task(task)

    def _task(self, task_id: TaskID) -> Task:
        return next(task for task in self.progress.tasks if task.id == task_id)

    def close(self) -> None:
        self.progress.stop()


def reporter(*, log_format: str, stream: IO[str] | None = None) -> Reporter:
    """Bars on a terminal (unless a log format was asked for), log lines otherwise."""
    stream = stream or sys.stderr
    if log_format == "auto" and stream.isatty():
        return Bars()
    return LogLines(stream, as_json=log_format == "json")
