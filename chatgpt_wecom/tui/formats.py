"""How times, durations and token counts are shown. Injected through the app factory so tests can fix them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chatgpt_wecom.visible import visible


@dataclass(slots=True)
class Formats:
    """Text for timestamps and durations, in one zone: the daemon's configured `timezone` once the app has its
    status (`use_zone`), so the TUI shows the times the exports and `ctl` show. `tz` given here is kept (tests);
    before the daemon answers, and for an older daemon that does not say, it is the operator's local zone.

    `fixed_time`, when set, replaces every clock time (snapshot tests: the screen must not depend on "now").
    """

    tz: tzinfo | None = None
    fixed_time: str | None = None
    zone: str = field(default="", init=False)  # the zone's name, for labels ("" : local, not known yet)
    _pinned: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._pinned = self.tz is not None
        self.zone = str(self.tz) if self.tz is not None else ""

    def use_zone(self, name: str) -> None:
        """Show times in the zone named `name` (an IANA name from the daemon's status) unless `tz` was given."""
        if self._pinned or not name or name == self.zone:
            return
        try:
            self.tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return  # unknown here: keep the local zone rather than show wrong labels
        self.zone = name

    def clock(self, at: float) -> str:
        """`HH:MM:SS` of a unix time."""
        if self.fixed_time is not None:
            return self.fixed_time
        return datetime.fromtimestamp(at, self.tz).strftime("%H:%M:%S")

    def stamp(self, at: float) -> str:
        """`YYYY-MM-DD HH:MM:SS` of a unix time."""
        if self.fixed_time is not None:
            return self.fixed_time
        return datetime.fromtimestamp(at, self.tz).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    """`42s`, `3m 05s`, `2h 07m`, `3d 04h` — coarse, for uptimes and token lifetimes."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def latency(seconds: float | None) -> str:
    """`1.23s`, or empty when not known yet."""
    return "" if seconds is None else f"{seconds:.2f}s"


def tokens(prompt: int | None, completion: int | None) -> str:
    """`prompt+completion`, or empty when not known yet."""
    if prompt is None and completion is None:
        return ""
    return f"{prompt or 0}+{completion or 0}"


def one_line(text: str, width: int) -> str:
    """`text` on one line, controls spelled out (`visible`), cut to `width` characters with an ellipsis."""
    flat = visible(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"
