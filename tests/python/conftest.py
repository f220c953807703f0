"""Shared pytest configuration for the differential suite (see harness.py).

Environment knobs:
  TIERED_TEST_REPEAT  how many times each case calls its tiered wrapper (default 2:
                      first call generic, later calls quickened).
  TIERED_LEAK_CALLS   calls per leak-test category (default 100000).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "genexpr: the case creates a generator (genexpr / nested generator function / "
        "contextlib.contextmanager) inside a tiered function; the generator itself may run in "
        "CPython, the calling function must still run in tier 1",
    )
    config.addinivalue_line(
        "markers",
        "real_tiering: the assertion depends on real tiering behaviour (fallback detection, "
        "tracing detection, bytecode validation), not only on agreeing with CPython",
    )


def pytest_report_header(config):
    try:
        import tiered
    except ImportError as e:  # pragma: no cover - reported, then collection fails
        return f"tiered: NOT IMPORTABLE ({e})"
    return f"tiered: {getattr(tiered, '__file__', '?')}"


@pytest.fixture
def no_trace():
    """Make sure no trace/profile function is left behind by a test."""
    yield
    sys.settrace(None)
    sys.setprofile(None)
