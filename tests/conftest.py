"""Shared fixtures: real data is found through ZSL_DATA and skipped with a clear reason when absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import zsl


def _real_data_root() -> Path | None:
    env = os.environ.get("ZSL_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _real_data_root()
    if root is None:
        pytest.skip(
            "real data not available: set ZSL_DATA to the shared "
            "data folder (make test does when ../shared/data exists)"
        )
    return root


@pytest.fixture(scope="session")
def awa1(data_root):
    if not (data_root / "awa1-lampert" / "labels.npz").is_file():
        pytest.skip(f"AwA1 not found under {data_root}/awa1-lampert")
    return zsl.load_dataset("awa1", "standard", data_root=data_root)


@pytest.fixture(scope="session")
def synthetic():
    return zsl.make_synthetic()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # every test writes derived artefacts into a temporary cache, never the user's
    if "ZSL_CACHE_KEEP" not in os.environ:
        monkeypatch.setenv("ZSL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
