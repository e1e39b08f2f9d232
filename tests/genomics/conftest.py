"""Fixtures for the genomics tests: paths of the shipped sequences and an index folder outside the repository."""

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "dna"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def index_dir(tmp_path) -> Path:
    folder = tmp_path / "fai"
    folder.mkdir()
    return folder
