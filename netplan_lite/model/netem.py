"""Link impairments (netem): the units a file writes, and the units the kernel keeps.

Every value is turned into the kernel's own unit when the file is loaded, and
the kernel's answer is shown through the same functions, so a desired value and
the value read back compare equal exactly when the kernel holds what was asked
for: a clean lab never shows false drift (`1%` is stored as a u32 fraction of
2^32-1, as tc computes it; delays as nanoseconds, as TCA_NETEM_LATENCY64 holds
them; rates as bytes per second).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

U32_MAX = 0xFFFFFFFF
S64_MAX = (1 << 63) - 1
DEFAULT_LIMIT = 1000  # packets: the kernel's when none is given

_TIME_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_RATE_UNITS = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000}
_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
_TIME = re.compile(_NUMBER + r"(s|ms|us|ns)")
_PERCENT = re.compile(_NUMBER + r"%")
_RATE = re.compile(_NUMBER + r"(bit|kbit|mbit|gbit)")

TIME_KEYS = ("delay", "jitter")
PERCENT_KEYS = ("loss", "duplicate", "reorder", "corrupt")


class UnitError(ValueError):
    """A netem value that is not written in its unit or is out of its range."""


@dataclass(frozen=True)
class Netem:
    """Kernel units: nanoseconds, u32 fractions of U32_MAX, bytes per second, packets."""

    delay: int = 0
    jitter: int = 0
    loss: int = 0
    duplicate: int = 0
    reorder: int = 0
    corrupt: int = 0
    rate: int = 0  # 0: unlimited
    limit: int = DEFAULT_LIMIT


def parse_time(text: str) -> int:
    """`20ms` -> 20000000 (ns)."""
    match = _TIME.fullmatch(str(text).strip())
    if match is None:
        raise UnitError(f"{text!r} is not a time (a number and s, ms, us or ns, e.g. 20ms)")
    value = round(float(match[1]) * _TIME_UNITS[match[2]])
    if value > S64_MAX:
        raise UnitError(f"{text!r} is longer than the kernel can hold")
    return value


def parse_percent(text: str) -> int:
    """`1%` -> the u32 fraction tc sends (rint(p / 100 * U32_MAX))."""
    match = _PERCENT.fullmatch(str(text).strip())
    if match is None:
        raise UnitError(f"{text!r} is not a percentage (a number and %, e.g. 1% or 0.5%)")
    percent = float(match[1])
    if percent > 100:
        raise UnitError(f"{text!r} is more than 100%")
    return round(percent / 100 * U32_MAX)


def parse_rate(text: str) -> int:
    """`100mbit` -> 12500000 (bytes per second, what the kernel keeps)."""
    match = _RATE.fullmatch(str(text).strip().lower())
    if match is None:
        raise UnitError(f"{text!r} is not a rate (a number and bit, kbit, mbit or gbit, e.g. 100mbit)")
    value = round(float(match[1]) * _RATE_UNITS[match[2]] / 8)
    if value < 1:
        raise UnitError(f"{text!r} is less than 8bit, the smallest rate the kernel holds (1 byte/s)")
    return value


def parse(spec: dict[str, object]) -> Netem:
    """A file's `netem:` mapping; raises UnitError naming the key."""
    values: dict[str, int] = {}
    for key, raw in spec.items():
        try:
            values[key] = _parse_one(key, raw)
        except UnitError as err:
            raise UnitError(f"{key}: {err}") from None
    if values.get("reorder") and not values.get("delay"):
        raise UnitError("reorder: the kernel reorders only delayed packets: give a delay too")
    if values.get("jitter") and not values.get("delay"):
        raise UnitError("jitter: varies the delay: give a delay too")
    return Netem(**values)


def _parse_one(key: str, raw: object) -> int:
    if key in TIME_KEYS:
        return parse_time(str(raw))
    if key in PERCENT_KEYS:
        return parse_percent(str(raw))
    if key == "rate":
        return parse_rate(str(raw))
    if key == "limit":
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= U32_MAX:
            raise UnitError(f"{raw!r} is not a packet count (1 to {U32_MAX})")
        return raw
    raise UnitError(f"unknown netem key (known: {', '.join(f.name for f in fields(Netem))})")


def show_time(ns: int) -> str:
    """Nanoseconds in the largest unit that holds them exactly: 20000000 -> 20ms, 1500 -> 1.5us."""
    for unit, size in _TIME_UNITS.items():
        if ns >= size and (ns * 1000) % size == 0:
            return f"{_trim(ns / size)}{unit}"
    return f"{ns}ns"


def show_percent(fraction: int) -> str:
    """A u32 fraction as a percentage, to the precision a file writes: 42949673 -> 1%."""
    return f"{_trim(round(fraction * 100 / U32_MAX, 6))}%"


def show_rate(bytes_per_second: int) -> str:
    bits = bytes_per_second * 8
    for unit, size in reversed(_RATE_UNITS.items()):
        if bits >= size and (bits * 1000) % size == 0:
            return f"{_trim(bits / size)}{unit}"
    return f"{bits}bit"


def _trim(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def shown(netem: Netem) -> dict[str, str]:
    """The impairments that are set, as a file writes them (limit only when not the default)."""
    parts: dict[str, str] = {}
    for key in TIME_KEYS:
        if getattr(netem, key):
            parts[key] = show_time(getattr(netem, key))
    for key in PERCENT_KEYS:
        if getattr(netem, key):
            parts[key] = show_percent(getattr(netem, key))
    if netem.rate:
        parts["rate"] = show_rate(netem.rate)
    if netem.limit != DEFAULT_LIMIT:
        parts["limit"] = str(netem.limit)
    return parts


def from_summary(text: str) -> Netem:
    """The Netem a summary line describes (the state holds impairments as text)."""
    words = text.split()
    return parse(dict(zip(words[::2], words[1::2], strict=True)))


def summary(netem: Netem) -> str:
    """One line: `delay 20ms jitter 5ms loss 1% rate 100mbit`."""
    return " ".join(f"{key} {value}" for key, value in shown(netem).items()) or "no impairment"
