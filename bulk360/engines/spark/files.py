"""Writing a DataFrame as one file of the import folder, as the local engine writes it.

Spark writes headerless CSV part files (one per partition, in parallel on the executors) with
PostgreSQL's CSV conventions: ``"`` quotes and doubles itself, an empty string is ``""``, NULL
is nothing, whitespace is kept. bulk360 then joins the header and the parts, in partition order,
into the file the manifest names, hashing it on the way: the loaders, ``verify`` and ``sync``
read one file per label and mapping whichever engine wrote it. With a cluster the import folder
is a path every executor and this process share.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Written", "write_csv"]

_CSV = {
    "header": "false",
    "quote": '"',
    "escape": '"',
    "escapeQuotes": "true",
    "ignoreLeadingWhiteSpace": "false",
    "ignoreTrailingWhiteSpace": "false",
    "emptyValue": '""',
    "nullValue": "",
    "lineSep": "\n",
    "encoding": "UTF-8",
}


@dataclass(frozen=True)
class Written:
    rows: int
    bytes: int
    sha256: str
    multiline: bool
    """Whether a value holds a line break (more line breaks than rows)."""


def write_csv(frame: Any, headers: list[str], out: Path, rows: int) -> Written:
    """``frame`` (its columns in ``headers`` order, ``rows`` of them) as ``out``, with a header."""
    parts = out.parent / f".{out.name}.parts"
    shutil.rmtree(parts, ignore_errors=True)
    frame.write.mode("overwrite").options(**_CSV).csv(str(parts))
    digest = hashlib.sha256()
    header = (",".join(headers) + "\n").encode()
    digest.update(header)
    size = len(header)
    breaks = 0
    with out.open("wb") as target:
        target.write(header)
        for part in sorted(parts.glob("part-*")):
            with part.open("rb") as source:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    breaks += chunk.count(b"\n")
    shutil.rmtree(parts, ignore_errors=True)
    return Written(rows, size, digest.hexdigest(), breaks > rows)
