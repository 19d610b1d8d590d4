"""What a recommendation run keeps: its lists as Parquet and in the control database, the
communities written back into the graph, the products' nearest neighbours."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from neo4j import Driver

from bulk360.apps.recommend.graph import GraphData
from bulk360.apps.recommend.scoring import communities
from bulk360.errors import ConfigError

if TYPE_CHECKING:
    pass

__all__ = [
    "store_similar",
    "write_communities",
    "write_parquet",
]


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """``frame`` as ``path``, written whole or not at all."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        frame.write_parquet(partial)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the embeddings to {path}: {exc.strerror or exc}") from None


def write_communities(driver: Driver, database: str, data: GraphData, seed: int) -> int:
    # Customers without history sit alone in the graph: they get no community.
    engaged = data.interactions.select("customer").unique()
    groups = (
        communities(data, seed).join(engaged, on="customer").join(data.customers, on="customer")
    )
    rows = groups.select("element_id", "community").rows()
    for start in range(0, len(rows), 5000):
        driver.execute_query(
            "UNWIND $rows AS r MATCH (c) WHERE elementId(c) = r[0] SET c.community = r[1]",
            rows=rows[start : start + 5000],
            database_=database,
            bookmark_manager_=None,
        )
    return int(groups.get_column("community").n_unique())


def store_similar(conn: Any, rec_run_id: int, similar: pl.DataFrame) -> None:
    with conn.cursor().copy(
        "COPY product_similarities (rec_run_id, product_key, rank, similar_key, score) FROM STDIN"
    ) as copy:
        for product, rank, other, score in similar.iter_rows():
            copy.write_row((rec_run_id, product, rank, other, score))
