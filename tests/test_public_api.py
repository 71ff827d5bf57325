"""Every module declares ``__all__``; it names only what exists and everything public it defines."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import parley

# Modules that pull optional heavy extras at import; checked when importable.
_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(parley.__path__, prefix="parley.") if "._" not in m.name
)


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional extra that is not installed
        pytest.fail(f"{name} cannot be imported in the test environment: {exc}")


@pytest.mark.parametrize("name", _MODULES)
def test_all_is_declared_and_complete(name: str) -> None:
    module = _import(name)
    if name.endswith("__main__"):
        return
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names missing {item!r}"
    defined_here = {
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == name
    }
    missing = defined_here - set(exported)
    assert not missing, f"{name} defines public names not in __all__: {sorted(missing)}"


def test_sans_io_layers_do_not_import_asyncio() -> None:
    """DESIGN §2: protocols/ and audio/ do no I/O; importing them must not pull asyncio."""
    import subprocess
    import sys

    code = (
        "import sys, parley.audio, parley.protocols, parley.turns\n"
        "bad = [m for m in ('asyncio', 'socket', 'websockets') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
