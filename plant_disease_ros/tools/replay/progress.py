"""Progress lines on stderr: redrawn in place on a terminal, one line each in a log file."""

from __future__ import annotations

import time
from typing import TextIO


class StatusLine:
    """A status line: redrawn in place (``\\r``) on a terminal, one line per update otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, 'isatty', lambda: False)())
        self.drawn = False

    def show(self, line: str) -> None:
        """Draw ``line``: over the previous one on a terminal, else as a line of its own."""
        if self.tty:
            self.stream.write('\r' + line + '\x1b[K')
            self.drawn = True
        else:
            self.stream.write(line + '\n')
        self.stream.flush()

    def finish(self) -> None:
        """End the line on a terminal (a log file already has one line per update)."""
        if self.tty and self.drawn:
            self.stream.write('\n')
            self.stream.flush()
            self.drawn = False


class ProgressLine:
    """One progress line, redrawn in place on a terminal, every 10 % otherwise."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.enabled = enabled
        self.line = StatusLine(stream)
        self.last_draw = 0.0
        self.last_decile = -1

    def update(self, sent: int, labelled: int, fps: float, bag_s: float, bag_total_s: float,
               force: bool = False) -> None:
        """Redraw the line: at most 5 times a second on a terminal, else once per 10 %."""
        if not self.enabled:
            return
        now = time.monotonic()
        decile = sent * 10 // self.total
        if self.line.tty and not force and now - self.last_draw < 0.2:
            return
        if not self.line.tty and not force and decile == self.last_decile:
            return
        self.last_draw, self.last_decile = now, decile
        line = (f'replay: {sent}/{self.total} frames sent, {labelled} labelled, '
                f'{fps:.1f} frames/s, bag {bag_s:.1f}/{bag_total_s:.1f} s')
        self.line.show(line)

    def finish(self) -> None:
        """End the progress line."""
        if self.enabled:
            self.line.finish()
