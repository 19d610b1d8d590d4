"""The MovieLens 100K sample end to end: loaded from the recbole wheel by its control rows alone,
built over Bolt, then its recommendations evaluated and computed through the command line.

Real PostgreSQL and Neo4j. The dataset file is the one `make datasets` downloads (make test
does first). This module builds the Neo4j database with the MovieLens graph; the shop's module
after it rebuilds the database with admin mode.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import Driver

from bulk360.settings import Settings
from tests.helpers.cli import bulk360_cli, run_cli
from tests.helpers.databases import sample_control
from tests.helpers.services import cypher

CONTROL_DB = "bulk360_test_movielens_control"
PREFIX = "bulk360_test_"
MOVIELENS_DB = PREFIX + "movielens"
ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "sql" / "samples" / "movielens" / "recommend.toml"
DATASET = tomllib.loads((ROOT / "sql" / "samples" / "movielens" / "dataset.toml").read_text())


def movielens_sql(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(**{**settings.control_conninfo(), "dbname": MOVIELENS_DB}) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def movielens(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, neo4j_driver: Driver
) -> Settings:
    """The sample in a control database of its own, its graph built by bolt mode (cleared first)."""
    ours = sample_control(
        settings, CONTROL_DB, tmp_path_factory.mktemp("movielens"), PREFIX, "movielens"
    )
    built = bulk360_cli(ours, ours.import_dir, "run", "--mode", "bolt", "--clear")
    assert built.returncode == 0, built.output
    return ours


def test_the_dataset_is_loaded_as_published_and_built_by_its_control_rows(
    movielens: Settings, neo4j_driver: Driver
) -> None:
    """The rows as the archive holds them (counted from it, not from the database), the graph
    equal to the same joins in SQL, and the excluded zip code nowhere in the graph."""
    import zipfile

    with zipfile.ZipFile(movielens.datasets_dir / DATASET["file"]) as archive:
        lines = {
            table: archive.read(member).decode().splitlines()[1:]
            for table, member in DATASET["tables"].items()
        }
    ratings = [line.split("\t") for line in lines["ml_ratings"]]
    counts = dict(
        movielens_sql(
            movielens,
            "SELECT 'users', count(*) FROM users UNION ALL "
            "SELECT 'movies', count(*) FROM movies UNION ALL "
            "SELECT 'ratings', count(*) FROM ratings",
        )
    )
    assert (
        counts
        == {
            "users": len(lines["ml_users"]),
            "movies": len(lines["ml_items"]),
            "ratings": len(ratings),
        }
        == {"users": 943, "movies": 1682, "ratings": 100_000}
    )
    liked = sum(1 for r in ratings if float(r[2]) >= 4)
    genres = {g for line in lines["ml_items"] for g in line.split("\t")[3].split(" ") if g}

    graph = {
        row["what"]: row["n"]
        for row in cypher(
            neo4j_driver,
            "MATCH (u:User) RETURN 'User' AS what, count(u) AS n UNION ALL "
            "MATCH (m:Movie) RETURN 'Movie' AS what, count(m) AS n UNION ALL "
            "MATCH (g:Genre) RETURN 'Genre' AS what, count(g) AS n UNION ALL "
            "MATCH ()-[r:LIKED]->() RETURN 'LIKED' AS what, count(r) AS n UNION ALL "
            "MATCH ()-[r:RATED]->() RETURN 'RATED' AS what, count(r) AS n UNION ALL "
            "MATCH ()-[r:IN_GENRE]->() RETURN 'IN_GENRE' AS what, count(r) AS n",
        )
    }
    (movie_genres,) = movielens_sql(movielens, "SELECT count(*) FROM movie_genres")[0]
    assert graph == {
        "User": 943,
        "Movie": 1682,
        "Genre": len(genres),
        "LIKED": liked,
        "RATED": len(ratings) - liked,
        "IN_GENRE": movie_genres,
    }
    # One rating checked value by value: its time as the archive's Unix time, its stars.
    user, movie, stars, stamp = ratings[0]
    (found,) = cypher(
        neo4j_driver,
        "MATCH (:User {id: $user})-[r:LIKED|RATED]->(:Movie {id: $movie}) "
        "RETURN r.rating AS rating, r.rated_at.epochSeconds AS at, type(r) AS type",
        user=int(user),
        movie=int(movie),
    )
    assert found == {
        "rating": int(stars),
        "at": int(float(stamp)),
        "type": "LIKED" if int(stars) >= 4 else "RATED",
    }
    assert (
        cypher(neo4j_driver, "MATCH (u:User) WHERE u.zip_code IS NOT NULL RETURN u LIMIT 1") == []
    )
    (title,) = cypher(
        neo4j_driver, "MATCH (m:Movie {id: 1}) RETURN m.title AS t, m.release_year AS y"
    )
    assert title == {"t": "Toy Story", "y": 1995}


def test_every_method_is_evaluated_on_real_ratings(movielens: Settings) -> None:
    """`recommend evaluate --model` on MovieLens: the counts against SQL, the intervals, the
    returning customers' figures, graph strategies and ALS above random; copurchase, which needs
    orders, skipped, and one line with exit 2 when asked for by name."""
    methods = ("community", "als", "most_popular", "random")
    printed = bulk360_cli(
        movielens,
        movielens.import_dir,
        *("recommend", "evaluate", "--model", str(MODEL), "--json"),
        *(arg for m in methods for arg in ("--strategy", m)),
    )
    assert printed.returncode == 0, printed.output
    result = json.loads(printed.stdout)
    cut = datetime.fromisoformat(result["cut"])
    # Who is evaluated: users who liked a movie after the cut that they had not liked before.
    (evaluated, new) = movielens_sql(
        movielens,
        "SELECT count(DISTINCT a.user_id),"
        " count(DISTINCT a.user_id) FILTER (WHERE NOT EXISTS"
        "   (SELECT FROM ratings b WHERE b.user_id = a.user_id AND b.rated_at < %(cut)s))"
        " FROM ratings a WHERE a.rating >= 4 AND a.rated_at >= %(cut)s"
        " AND NOT EXISTS (SELECT FROM ratings b WHERE b.user_id = a.user_id"
        "   AND b.movie_id = a.movie_id AND b.rating >= 4 AND b.rated_at < %(cut)s)".replace(
            "%(cut)s", f"'{cut.isoformat()}'"
        ),
    )[0]
    assert (result["customers"], result["new_customers"]) == (evaluated, new)
    assert result["customers"] + result["left_out"] == 943
    assert set(result["methods"]) == set(methods) and result["skipped"] == {}
    for name, row in result["methods"].items():
        assert row["returning_customers"] == evaluated - new > 20
        for figures in (row["metrics"], row["returning_metrics"]):
            for metric, figure in figures.items():
                assert 0 <= figure["low"] <= figure["value"] <= figure["high"] <= 1, (name, metric)
    ndcg = {m: result["methods"][m]["metrics"]["ndcg@10"] for m in methods}
    assert ndcg["community"]["low"] > ndcg["random"]["high"]
    assert ndcg["als"]["low"] > ndcg["random"]["high"]

    asked = bulk360_cli(
        movielens,
        movielens.import_dir,
        *("recommend", "evaluate", "--model", str(MODEL), "--strategy", "copurchase"),
    )
    assert asked.returncode == 2, asked.output
    assert "copurchase needs orders" in asked.stderr and "Traceback" not in asked.stderr
    assert len(asked.stderr.strip().splitlines()) == 1, asked.stderr


def test_recommend_with_the_sample_model_skips_what_cannot_run(movielens: Settings) -> None:
    """`recommend --model` stores lists of movies for every user, by the default strategies
    except copurchase (named as skipped); a --weights option overrides the model file's."""
    printed = bulk360_cli(
        movielens,
        movielens.import_dir,
        *("recommend", "--model", str(MODEL), "--eval-customers", "50", "--json"),
    )
    assert printed.returncode == 0, printed.output
    result = json.loads(printed.stdout)
    assert set(result["skipped"]) == {"copurchase"}
    assert set(result["quality"]) == {"weighted", "community", "popular"}
    with psycopg.connect(**movielens.control_conninfo()) as conn:
        stored = conn.execute(
            "SELECT r.strategies, count(DISTINCT customer_key), count(*) FILTER (WHERE"
            " product_key !~ '^[0-9]+$') FROM recommendation_runs r JOIN recommendations USING"
            " (rec_run_id) WHERE rec_run_id = %s GROUP BY r.strategies",
            [result["rec_run_id"]],
        ).fetchone()
    assert stored == (["weighted", "community", "popular"], 943, 0)

    wrong = bulk360_cli(
        movielens,
        movielens.import_dir,
        *("recommend", "--model", str(MODEL), "--weights", "LIKED=5", "--purchase-type", "RATED"),
    )
    assert wrong.returncode == 2, wrong.output
    assert "the purchase type RATED needs a weight" in wrong.stderr, wrong.stderr


def test_a_missing_or_wrong_dataset_file_is_one_line_and_costs_nothing(
    movielens: Settings, tmp_path: Path
) -> None:
    """No archive, or another file under its name: exit 2, one line naming the file and how to
    fetch it, and the loaded sample's database untouched."""
    empty = tmp_path / "empty"
    empty.mkdir()
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    original = movielens.datasets_dir / DATASET["file"]
    shutil.copy(original, wrong / DATASET["file"])
    with (wrong / DATASET["file"]).open("ab") as handle:
        handle.write(b"\0")
    assert hashlib.sha256(original.read_bytes()).hexdigest() == DATASET["sha256"]
    for folder, expected in (
        (empty, "is missing; fetch it with `make datasets`"),
        (wrong, "is not the dataset file expected"),
    ):
        result = run_cli(
            movielens,
            movielens.import_dir,
            *("sample", "load", "movielens", "--database-prefix", PREFIX),
            env={"BULK360_DATASETS_DIR": str(folder)},
        )
        assert result.returncode == 2, result.output
        assert expected in result.stderr and str(folder) in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert movielens_sql(movielens, "SELECT count(*) FROM ratings") == [(100_000,)]
