"""The grammar of mod names, versions, aliases and version ranges — one source of truth.

Every edge that meets a name checks it here before building a URL, a query or a cache key:

    SDK          serialize_mod / @mod bundles          check_mod_name
    serving      "base/<mod>@<ref>" in a request       check_mod_name, check_ref
    gateway      the same model string, before routing  (through serving's model_names)
    registry     publish, resolve, aliases, yanks       check_mod_name, VERSION, check_ref

Numbers are bounded (at most 9 digits per numeric identifier), so no input can reach Python's
integer-parsing limits or a database integer overflow; every string is bounded in length.
"""

from __future__ import annotations

import re

__all__ = [
    "ALIAS",
    "MAX_INT64",
    "MAX_MOD_NAME",
    "MAX_REF",
    "MOD_NAME",
    "VERSION",
    "InvalidName",
    "check_alias",
    "check_mod_lookup",
    "check_mod_name",
    "check_ref",
    "check_version",
    "is_range",
]

MAX_INT64 = 2**63 - 1  # seeds, pagination cursors: what a BIGINT column and a torch generator take
MAX_MOD_NAME = 64
MAX_REF = 128

MOD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_NUM = r"(?:0|[1-9]\d{0,8})"  # a numeric identifier: at most 9 digits
_PRE_ID = rf"(?:{_NUM}|\d{{0,9}}[A-Za-z-][0-9A-Za-z-]{{0,63}})"
VERSION = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID}){{0,15}}))?"
    r"(?:\+([0-9A-Za-z-]{1,64}(?:\.[0-9A-Za-z-]{1,64}){0,15}))?"
)
_RANGE_PART = re.compile(r"\s*(\^|~|>=|<=|>|<|=)?\s*(\S+)\s*")


class InvalidName(ValueError):
    """A name, version or ref outside the grammar; the message says what was expected."""


def check_mod_name(name: str) -> str:
    if not isinstance(name, str) or not MOD_NAME.fullmatch(name):
        shown = name[:40] + "…" if isinstance(name, str) and len(name) > 40 else name
        raise InvalidName(
            f"invalid mod name {shown!r}: mod names are 1–{MAX_MOD_NAME} letters, digits, '_', '-' or '.',"
            " starting with a letter or digit"
        )
    return name


def check_mod_lookup(name: str) -> str:
    """A name as lookups take it: `mod`, or `tenant:mod` for another tenant's public mod."""
    owner, colon, bare = name.rpartition(":") if isinstance(name, str) else ("", "", name)
    if colon and not TENANT.fullmatch(owner):
        raise InvalidName(f"invalid tenant {owner[:40]!r} in mod name: tenants are 1-63 lowercase letters, digits, '-'")
    check_mod_name(bare)
    return name


def check_version(version: str) -> str:
    if not isinstance(version, str) or len(version) > MAX_REF or not VERSION.fullmatch(version):
        shown = version[:40] + "…" if isinstance(version, str) and len(version) > 40 else version
        raise InvalidName(f"{shown!r} is not a semantic version (like 1.2.3 or 1.2.3-rc.1; numbers up to 9 digits)")
    return version


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS.fullmatch(alias) or VERSION.fullmatch(alias):
        shown = alias[:40] if isinstance(alias, str) else alias
        raise InvalidName(f"invalid alias {shown!r}: alias names start with a letter: 1-64 letters, digits, '_' or '-'")
    return alias


def is_range(ref: str) -> bool:
    return ref[:1] in "^~<>=" or "," in ref


def check_ref(ref: str) -> str:
    """A version, an alias, or a range of comma-separated `^v`, `~v`, `>=v`, `<v`… parts."""
    if not isinstance(ref, str) or not ref or len(ref) > MAX_REF:
        raise InvalidName(f"version reference must be 1–{MAX_REF} characters")
    if VERSION.fullmatch(ref) or ALIAS.fullmatch(ref):
        return ref
    if is_range(ref):
        for part in ref.split(","):
            match = _RANGE_PART.fullmatch(part)
            if not match or not VERSION.fullmatch(match.group(2)):
                raise InvalidName(f"bad version range {ref[:40]!r}: use parts like ^1.2.0, ~1.2.0, >=1.0.0,<2.0.0")
        return ref
    raise InvalidName(f"{ref[:40]!r} is not a version, an alias or a version range")
