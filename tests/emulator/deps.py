"""The emulator tests' hard dependencies: a missing one FAILS the tests that need it (with the
fix), it never skips them."""

import importlib.util

import pytest

HARD_DEPENDENCIES = ("flydsl", "ziglang")  # the compiler + MLIR bindings; the linker


def require(modules: tuple[str, ...] = HARD_DEPENDENCIES) -> None:
    """Fail the calling test (never skip it) when one of `modules` cannot be imported."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(
            f"the emulator tests need {', '.join(missing)} (hard dependencies, not optional): "
            "install them with `pip install -e '.[dev]'`",
            pytrace=False,
        )
