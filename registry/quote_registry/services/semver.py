"""Semantic versions (semver 2.0) and the ranges `resolve` accepts: exact, ^x.y.z, ~x.y.z, comparisons."""

from __future__ import annotations

import re
from dataclasses import dataclass

from quote_mod_sdk import names
from quote_registry.errors import Invalid

_COMPARATOR = re.compile(r"^(>=|<=|>|<|=)?\s*(\S+)$")


@dataclass(frozen=True, order=False)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric ones.
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)


def parse(text: str) -> Version:
    # The SDK's bounded grammar (numbers of at most 9 digits): never Python's integer-digit limit.
    match = names.VERSION.fullmatch(text) if isinstance(text, str) and len(text) <= names.MAX_REF else None
    if not match:
        raise Invalid(f"{text!r} is not a semantic version (like 1.2.3 or 1.2.3-rc.1)", param="version")
    pre = tuple(int(p) if p.isdigit() else p for p in (match.group(4) or "").split(".") if p)
    return Version(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre)


def is_range(text: str) -> bool:
    return names.is_range(text)


def matches(version: Version, spec: str) -> bool:
    """Does `version` satisfy a range like "^1.2.0", "~1.2.0", ">=1.0.0,<2.0.0"? Pre-releases never match."""
    if version.pre:
        return False
    return all(_matches_one(version, part) for part in (p.strip() for p in spec.split(",")))


def _matches_one(version: Version, part: str) -> bool:
    if part.startswith("^"):
        low = parse(part[1:])
        high = Version(low.major + 1, 0, 0) if low.major else Version(0, low.minor + 1, 0)
        return low.key() <= version.key() < high.key()
    if part.startswith("~"):
        low = parse(part[1:])
        return low.key() <= version.key() < Version(low.major, low.minor + 1, 0).key()
    match = _COMPARATOR.match(part)
    if not match:
        raise Invalid(f"bad version range {part!r}", param="ref")
    op, bound = match.group(1) or "=", parse(match.group(2)).key()
    value = version.key()
    return {"=": value == bound, ">": value > bound, ">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]
