"""Statement times: UTC, whole seconds, `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339)."""

from __future__ import annotations

import datetime
import re
from typing import Any, Final

from merkle.errors import BundleError, FormatError

TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"


def format_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT)


def parse_time(text: Any, where: str) -> datetime.datetime:
    if not isinstance(text, str):
        raise BundleError(f"{where} is not a time string")
    try:
        return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except ValueError as e:
        raise BundleError(f"{where} {text!r} is not a UTC time like 2027-01-31T00:00:00Z") from e


_DURATION: Final = re.compile(r"(\d{1,9})([dhm])")
_UNIT_SECONDS: Final = {"d": 86400, "h": 3600, "m": 60}


def parse_duration(text: str) -> int:
    """'90d', '12h', '30m' -> seconds; FormatError otherwise."""
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        raise FormatError(f"{text!r} is not a duration such as 90d, 12h or 30m")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
