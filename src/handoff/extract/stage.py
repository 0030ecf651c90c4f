"""Staging: passing chunks become Parquet (zstd) files with a SHA-256 each.

Files are written into ``<staging>/<batch>.partial/`` and the folder is renamed to
``<staging>/<batch>/`` only when the whole batch passed. A quarantined batch's files move to
``<quarantine>/<batch>/`` beside its report and are never delivered.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pyarrow loads where files are written or read, not where their records are (`status`)
    import pyarrow as pa


@dataclass(frozen=True)
class StagedFile:
    name: str
    rows: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# A column's dictionary page is given up (the rest of its pages plain) once it passes this many
# bytes. Arrow's default, 1 MiB, kept hashing an ID, address or phone column of 50,000 mostly
# distinct values into a dictionary it then wrote beside the values: with 32 KiB only low-cardinality
# columns (codes, states, cities) keep theirs. 50,000 rows of the order's columns: 36 -> 26 ms of
# CPU to encode, 1.59 -> 1.28 MB (docs/benchmarks.md).
DICTIONARY_PAGE_BYTES = 32 * 1024


def parquet_bytes(table: pa.Table) -> bytes:
    """Encode one chunk deterministically: same rows in, same bytes out."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=True, store_schema=True,
                   dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES)  # fmt: skip
    return sink.getvalue().to_pybytes()


def content_hash(files: list[StagedFile]) -> str:
    """The batch's content hash: SHA-256 over each file's name, rows and SHA-256, in order."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(f"{f.name}\t{f.rows}\t{f.sha256}\n".encode())
    return h.hexdigest()


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


class Stager:
    """Writes one batch's files; ``commit`` publishes them, ``quarantine`` sets them aside."""

    def __init__(self, staging_dir: Path, batch_id: str, prefix: str | None = None) -> None:
        self.final = staging_dir / batch_id
        self.partial = staging_dir / f"{batch_id}.partial"
        self.partial.mkdir(parents=True, exist_ok=prefix is not None)
        os.chmod(self.partial, 0o700)
        self.prefix = prefix  # partitions write "PREFIX-NNNNN.parquet"; renumber() names them part-*
        self.files: list[StagedFile] = []

    def write(self, table: pa.Table) -> StagedFile:
        return self.write_bytes(parquet_bytes(table), table.num_rows)

    def write_bytes(self, data: bytes, rows: int) -> StagedFile:
        """Write one encoded chunk as the next part file and hash it."""
        name = f"{self.prefix}-{len(self.files):05d}.parquet" if self.prefix else part_name(len(self.files))
        (self.partial / name).write_bytes(data)
        staged = StagedFile(name, rows, len(data), hashlib.sha256(data).hexdigest())
        self.files.append(staged)
        return staged

    def adopt(self, files: list[StagedFile]) -> None:
        """Take files written into ``partial`` by partitions and name them part-NNNNN in order."""
        for i, f in enumerate(files):
            name = part_name(i)
            (self.partial / f.name).rename(self.partial / name)
            self.files.append(StagedFile(name, f.rows, f.bytes, f.sha256))

    def commit(self) -> Path:
        self.partial.rename(self.final)
        return self.final

    def discard(self) -> None:
        """Remove what was written so far (a run that failed before its batch was recorded)."""
        shutil.rmtree(self.partial, ignore_errors=True)

    def quarantine(self, quarantine_dir: Path) -> Path:
        target = quarantine_dir / self.final.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.partial), str(target))
        os.chmod(target, 0o700)
        return target


def verify_staged(folder: Path, files: list[StagedFile]) -> list[str]:
    """Names of staged files that are missing or whose bytes no longer match their SHA-256."""
    bad = []
    for f in files:
        path = folder / f.name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != f.sha256:
            bad.append(f.name)
    return bad


def check_schema(folder: Path, files: list[StagedFile], schema: pa.Schema) -> list[str]:
    """Staged files whose Parquet schema is not exactly ``schema`` (or that are missing), by name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = []
    for f in files:
        try:
            got = pq.read_schema(folder / f.name)
        except (OSError, pa.ArrowInvalid):
            bad.append(f"{f.name} missing or unreadable")
            continue
        if got.names != schema.names or [x.type for x in got] != [x.type for x in schema]:
            extra = [n for n in got.names if n not in schema.names]
            bad.append(f"{f.name} has columns {', '.join(extra) or 'in another order or type'}")
    return bad
