"""Shared fixtures. Hypothesis profiles: 'ci' (default) and 'thorough' (HYPOTHESIS_PROFILE)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# ---- the simulated MCU, Python firmware and C firmware alike (issue 19) -----------------------
import contextlib  # noqa: E402
import itertools  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def c_firmware_built() -> None:
    """Builds firmware/ (host target) once per session: a failed build fails the C tests."""
    from sim_hardware.mcu.c_firmware import host_binary

    host_binary(build=True)


@pytest.fixture(params=["python", "c"])
def mcu_kind(request: pytest.FixtureRequest) -> str:
    """Which firmware runs the simulated MCU: the Python one or the C host build."""
    if request.param == "c":
        request.getfixturevalue("c_firmware_built")
    return str(request.param)


@pytest.fixture
def start_mcu(mcu_kind: str, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """``start_mcu(process=False, **SimMcuOptions fields)`` starts a simulated MCU of this
    test's kind and returns its ``tests.firmware.harness.SimulatedMcu`` (``.path`` is the
    pty); everything started is stopped after the test."""
    from tests.firmware.harness import open_mcu

    names = itertools.count()
    with contextlib.ExitStack() as stack:

        def start(process: bool = False, **options: Any) -> Any:
            link = tmp_path / f"mcu-{mcu_kind}-{next(names)}"
            return stack.enter_context(open_mcu(mcu_kind, link, process=process, **options))

        yield start


@pytest.fixture
def mcu_firmware(start_mcu: Callable[..., Any]) -> str:
    """The pty path of a running simulated MCU (default options), once per firmware kind."""
    return str(start_mcu().path)


# ---- logging: a test that runs the CLI's main() in-process must not leave its handler ----------
@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """`setup_logging` (the CLI's main) replaces the root logger's handlers with one on the
    sys.stderr of that moment: pytest's capture, closed after the test. Left in place, every
    later log line from a background thread prints a 'Logging error' traceback into whatever
    stderr a later test is reading. Each test gets the root logger back as it found it."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
