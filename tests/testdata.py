"""Where the tests' data lives, and the one gate every test that needs it goes through.

Locally a missing fixture or data package skips the test with the reason. Under ``CI=true`` the
same absence fails the run: a CI without ``../shared`` or the Debian data must not be green.
GPU-only tests (marker ``gpu``) are not data: they skip without CUDA everywhere.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IMAGEBIND_FIXTURES = SHARED / "fixtures" / "imagebind"
LANGUAGEBIND_FIXTURES = SHARED / "fixtures" / "languagebind"
ASSETS = IMAGEBIND_FIXTURES / "assets"
VISP = Path("/usr/share/visp-images-data/ViSP-images")
TUXPAINT_STAMPS = Path("/usr/share/tuxpaint/stamps")


def on_ci() -> bool:
    """True when the run is CI's (``CI=true``), where missing data is a failure."""
    return os.environ.get("CI") == "true"


def require_data(what: Path | bool, reason: str) -> None:
    """Skip (locally) or fail (under ``CI=true``) unless ``what`` exists or is true.

    ``reason`` says what is missing and how to get it; it is the skip reason or the failure.
    """
    present = what.exists() if isinstance(what, Path) else bool(what)
    if present:
        return
    if on_ci():
        pytest.fail(f"test data missing under CI=true: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str, reason: str) -> ModuleType:
    """Import a third-party module of an optional extra, gated like `require_data`."""
    try:
        return importlib.import_module(name)
    except ImportError:
        require_data(False, reason)
        raise
