"""A graph model file (`recommend --model`) and a sample's dataset file, read and refused."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from bulk360.apps.samples import read_dataset
from bulk360.apps.strategies import MODEL_FIELDS, RecommendOptions, read_model
from bulk360.errors import ConfigError
from bulk360.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_the_movielens_model_sets_the_graph_and_nothing_else() -> None:
    model = read_model(ROOT / "sql" / "samples" / "movielens" / "recommend.toml")
    assert set(model) <= set(MODEL_FIELDS)
    options = RecommendOptions(**model)
    options.check()
    assert (options.customer_label, options.product_label, options.purchase_type) == (
        "User",
        "Movie",
        "LIKED",
    )
    assert options.weights == {"RATED": 1.0, "LIKED": 5.0}
    assert options.top_n == RecommendOptions().top_n  # a run option keeps its default


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("top_n = 5\n", "sets top_n, which is not part of a graph model"),
        ("customer_label = 3\n", "customer_label in"),
        ("customer_label = ''\n", "must be a non-empty string"),
        ("[weights]\nLIKED = 'five'\n", "must be a table of TYPE = number"),
        ("weights = 5\n", "must be a table of TYPE = number"),
        ("customer_label = \n", "is not a readable TOML file"),
    ],
)
def test_a_wrong_model_file_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "model.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="--model") as raised:
        read_model(path)
    assert message in str(raised.value) and str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_model(tmp_path / "none.toml")


def _sample(tmp_path: Path, archive: bytes) -> tuple[Path, Path]:
    """A sample folder whose dataset.toml names an archive in a datasets folder."""
    folder, datasets = tmp_path / "sample", tmp_path / "datasets"
    folder.mkdir()
    datasets.mkdir()
    (datasets / "data.zip").write_bytes(archive)
    (folder / "dataset.toml").write_text(
        'file = "data.zip"\n'
        f'sha256 = "{hashlib.sha256(archive).hexdigest()}"\n'
        'fetch = "make datasets"\n'
        '[tables]\nraw = "inner/rows.tsv"\n'
    )
    return folder, datasets


def _zip(tmp_path: Path, members: dict[str, bytes]) -> bytes:
    path = tmp_path / "build.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path.read_bytes()


def test_a_dataset_is_read_from_its_archive(settings: Settings, tmp_path: Path) -> None:
    rows = b"id:token\tname:token_seq\n1\tToy Story\n"
    folder, datasets = _sample(tmp_path, _zip(tmp_path, {"inner/rows.tsv": rows}))
    assert read_dataset(replace(settings, datasets_dir=datasets), folder) == {"raw": rows}
    assert read_dataset(settings, tmp_path) == {}  # a folder without dataset.toml


def test_a_changed_or_incomplete_archive_is_refused(settings: Settings, tmp_path: Path) -> None:
    folder, datasets = _sample(tmp_path, _zip(tmp_path, {"inner/other.tsv": b"x\n"}))
    ours = replace(settings, datasets_dir=datasets)
    with pytest.raises(ConfigError, match="does not hold the sample's files"):
        read_dataset(ours, folder)
    with (datasets / "data.zip").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ConfigError, match=r"is not the dataset file expected.*make datasets"):
        read_dataset(ours, folder)
