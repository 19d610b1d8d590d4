"""Every mode of the registry has a loader that says what it needs."""

from __future__ import annotations

import importlib

import pytest

from bulk360 import RunOptions, SilentReporter
from bulk360.load import LOADERS, LoadContext, loader_for
from bulk360.options import MODES
from bulk360.settings import Settings


def test_every_mode_is_registered() -> None:
    assert set(LOADERS) == set(MODES)


@pytest.mark.parametrize("mode", MODES)
def test_each_loader_declares_what_it_needs(mode: str) -> None:
    module, _, name = LOADERS[mode].loader.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert cls.server in ("stopped", "running", None)
    assert isinstance(cls.writes, bool) and isinstance(cls.swaps, bool)
    for option in LOADERS[mode].options:
        assert option in RunOptions.__dataclass_fields__
    context = LoadContext(
        Settings("h", 5432, "db", "u", "p"), RunOptions(mode=mode), SilentReporter(), print
    )
    loader = loader_for(mode, context)
    assert isinstance(loader, cls) and loader.load_title()


def test_only_admin_mode_stages_and_swaps() -> None:
    needs = {}
    for mode, registered in LOADERS.items():
        module, _, name = registered.loader.partition(":")
        cls = getattr(importlib.import_module(module), name)
        needs[mode] = (cls.server, cls.writes, cls.swaps)
    assert needs == {
        "admin": ("stopped", True, True),
        "bolt": ("running", True, False),
        "csv": (None, False, False),
        "sync": ("running", True, False),
    }
