"""Fixtures shared by every test folder: the offline tiny tokenizer, an artifacts folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("QUOTE_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    """A real byte-level BPE tokenizer trained locally (1024 tokens, ChatML template)."""
    from quote_serving.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ---- no silent skips --------------------------------------------------------------------------
_skipped: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "gpu" not in report.keywords:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With QUOTE_STRICT_SKIPS=1 (CI), a skipped test that is not marked `gpu` fails the run."""
    if os.environ.get("QUOTE_STRICT_SKIPS") == "1" and _skipped:
        for nodeid, reason in _skipped:
            print(f"\nSKIPPED BUT REQUIRED IN CI: {nodeid}: {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
