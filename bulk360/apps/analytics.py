"""The analytics questions shipped with the samples, as Cypher files in ``bulk360/queries/``.

Each file starts with a ``//`` line that says what it answers; ``$reference_date`` and
``$email`` are parameters with the defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neo4j import Driver
from neo4j.exceptions import Neo4jError

from bulk360.errors import ConfigError, TargetError

__all__ = ["DEFAULT_PARAMETERS", "Question", "find_question", "questions", "run_question"]

QUERIES = Path(__file__).parent / "queries"

DEFAULT_PARAMETERS: dict[str, Any] = {
    "reference_date": "2025-11-03T00:00:00Z",
    "email": "john.smith@email.com",
}


@dataclass(frozen=True)
class Question:
    """One shipped query: file ``NN_name.cypher`` gives ``number`` and ``name``."""

    number: int
    name: str
    sample: str
    title: str
    cypher: str


def questions(sample: str = "customer360") -> list[Question]:
    """The questions of ``sample``, in file order."""
    folder = QUERIES / sample
    if not folder.is_dir():
        raise ConfigError(f"no questions for sample '{sample}'")
    found = []
    for path in sorted(folder.glob("*.cypher")):
        text = path.read_text()
        title = text.splitlines()[0].removeprefix("//").strip()
        number, name = path.stem.split("_", 1)
        found.append(Question(int(number), name, sample, title, text))
    return found


def find_question(name: str, sample: str = "customer360") -> Question:
    """The question called ``name`` (or numbered ``name``)."""
    for question in questions(sample):
        number = next(p for p in sorted((QUERIES / sample).glob(f"*_{question.name}.cypher")))
        if name in {
            question.name,
            number.stem.split("_", 1)[0],
            number.stem.split("_", 1)[0].lstrip("0"),
        }:
            return question
    names = ", ".join(q.name for q in questions(sample))
    raise ConfigError(f"no question called '{name}'; questions: {names}")


def run_question(
    driver: Driver, question: Question, database: str, **parameters: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """Run one question; returns its column names and rows."""
    values = {**DEFAULT_PARAMETERS, **{k: v for k, v in parameters.items() if v is not None}}
    try:
        records, _, keys = driver.execute_query(
            question.cypher, values, database_=database, bookmark_manager_=None
        )
    except Neo4jError as exc:
        raise TargetError(f"question '{question.name}' failed: {exc.message}") from None
    return list(keys), [record.data() for record in records]
