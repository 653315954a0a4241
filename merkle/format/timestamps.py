"""Statement times: UTC, whole seconds, `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339)."""

from __future__ import annotations

import datetime
from typing import Any, Final

from merkle.errors import BundleError

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
