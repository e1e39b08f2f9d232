"""Builds, checks and reads the samtools ``.fai`` index of a plain or BGZF FASTA file.

The index is built by one streaming pass that also validates the file, so that a malformed FASTA fails once, early,
with the file, record and 1-based line in the message, instead of yielding garbage windows later: text before the
first header, empty or duplicate record names, symbols that are not IUPAC nucleotide codes, ragged line lengths
inside a record, and BGZF truncation are all reported. The written ``.fai`` has the standard five columns, so
samtools and pyfaidx read it too; for a ``.gz`` file offsets are in uncompressed bytes, as in samtools.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from genomics.bgzf import is_gzip, scan_blocks, write_gzi
from genomics.errors import FastaFormatError, FastaIndexError

IUPAC_NUCLEOTIDES = b"ACGTUNRYSWKMBDHVacgtunryswkmbdhv"
_PROGRESS_MIN_BYTES = 64 << 20  # show a progress bar only for files large enough to take a while


@dataclass(frozen=True)
class FaiEntry:
    name: str
    length: int
    offset: int  # uncompressed byte offset of the first base
    line_bases: int
    line_width: int  # bytes per full line, newline included


def index_paths(fasta: str | os.PathLike, index_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Where the .fai and .gzi of ``fasta`` live: beside it (samtools' convention) or inside ``index_dir``."""
    fasta = Path(fasta)
    folder = Path(index_dir) if index_dir is not None else fasta.parent
    return folder / (fasta.name + ".fai"), folder / (fasta.name + ".gzi")


def _open_stream(path: Path, compressed: bool):
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def scan_fasta(path: str | os.PathLike, compressed: bool | None = None) -> list[FaiEntry]:
    """Validate ``path`` and return its index entries (file order). Raises FastaFormatError naming file/record/line."""
    path = Path(path)
    if compressed is None:
        compressed = is_gzip(path)
    entries: list[FaiEntry] = []
    seen: set[str] = set()
    name = None
    length = offset = line_bases = line_width = 0
    short_line_at = None  # line number of a short (last) line; any later sequence line in the record is an error
    blank_line_at = None
    pos = 0
    size = path.stat().st_size
    progress = tqdm(total=size, unit="B", unit_scale=True, desc=f"indexing {path.name}",
                    disable=size < _PROGRESS_MIN_BYTES)

    def close_record():
        if name is not None:
            entries.append(FaiEntry(name, length, offset, line_bases, line_width))

    try:
        with _open_stream(path, compressed) as stream:
            for number, raw in enumerate(stream, start=1):
                width = len(raw)
                if number % 65536 == 0 and not compressed:
                    progress.update(pos - progress.n)
                if raw.startswith(b">"):
                    close_record()
                    header = raw[1:].decode("utf-8", "replace").strip()
                    if not header or header.split()[0] == "":
                        raise FastaFormatError(path, "header line '>' without a record name", line=number)
                    name = header.split()[0]
                    if name in seen:
                        raise FastaFormatError(path, "duplicate record name", record=name, line=number)
                    seen.add(name)
                    length = line_bases = line_width = 0
                    offset = pos + width
                    short_line_at = blank_line_at = None
                else:
                    bases = raw.rstrip(b"\r\n")
                    if name is None:
                        if not bases.strip() or bases.startswith(b";"):
                            pos += width
                            continue
                        raise FastaFormatError(path, "sequence text before the first '>' header line (is this a "
                                                     "FASTA file?)", line=number)
                    if not bases:
                        blank_line_at = blank_line_at or number
                        pos += width
                        continue
                    bad = bases.translate(None, IUPAC_NUCLEOTIDES)
                    if bad:
                        column = next(i for i, c in enumerate(bases) if c not in IUPAC_NUCLEOTIDES) + 1
                        symbol = chr(bad[0]) if 32 <= bad[0] < 127 else f"byte 0x{bad[0]:02x}"
                        raise FastaFormatError(path, f"character {symbol!r} at column {column} is not an IUPAC "
                                                     "nucleotide code", record=name, line=number)
                    if blank_line_at is not None or short_line_at is not None:
                        raise FastaFormatError(path, "inconsistent line lengths: only the last line of a record may "
                                                     f"be shorter or blank (see line {blank_line_at or short_line_at})",
                                               record=name, line=number)
                    if line_bases == 0:
                        line_bases, line_width = len(bases), width
                    elif len(bases) > line_bases or (len(bases) == line_bases and width != line_width):
                        raise FastaFormatError(path, f"line of {len(bases)} bases is longer than the record's first "
                                                     f"line ({line_bases}); FASTA lines must have one width",
                                               record=name, line=number)
                    elif len(bases) < line_bases:
                        short_line_at = number
                    length += len(bases)
                pos += width
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise FastaFormatError(path, f"truncated or corrupt compressed data ({exc})", record=name) from exc
    except OSError as exc:
        raise FastaFormatError(path, f"cannot read: {exc}") from exc
    finally:
        progress.close()
    close_record()
    if not entries:
        raise FastaFormatError(path, "no '>' header line found: not a FASTA file, or empty")
    return entries


def write_fai(entries: list[FaiEntry], target: Path) -> None:
    """Write atomically (temp file + rename) so that an interrupted build never leaves a half index behind."""
    handle, tmp = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w") as out:
            for e in entries:
                out.write(f"{e.name}\t{e.length}\t{e.offset}\t{e.line_bases}\t{e.line_width}\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_fai(target: Path, fasta: Path) -> list[FaiEntry]:
    entries = []
    try:
        lines = target.read_text().splitlines()
    except OSError as exc:
        raise FastaIndexError(fasta, f"cannot read index {target}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        try:
            name, length, offset, line_bases, line_width = fields[0], *map(int, fields[1:5])
        except (ValueError, IndexError) as exc:
            raise FastaIndexError(target, "not a valid .fai line (expected name, length, offset, line bases, "
                                          "line bytes)", line=number) from exc
        entries.append(FaiEntry(name, length, offset, line_bases, line_width))
    return entries


def _end_offset(entry: FaiEntry) -> int:
    if entry.length == 0:
        return entry.offset
    full, rest = divmod(entry.length, entry.line_bases)
    return entry.offset + full * entry.line_width + rest


def load_index(fasta: str | os.PathLike, index_dir: str | os.PathLike | None = None
               ) -> tuple[list[FaiEntry], list[tuple[int, int]] | None]:
    """Return (fai entries, BGZF block table or None), building and saving missing or stale indexes."""
    fasta = Path(fasta)
    if not fasta.is_file():
        raise FastaFormatError(fasta, "no such FASTA file")
    compressed = is_gzip(fasta)
    fai, gzi = index_paths(fasta, index_dir)
    blocks = scan_blocks(fasta) if compressed else None
    data_size = blocks[-1][1] if compressed else fasta.stat().st_size
    fresh = fai.is_file() and fai.stat().st_mtime >= fasta.stat().st_mtime
    if fresh:
        entries = read_fai(fai, fasta)
    else:
        entries = scan_fasta(fasta, compressed)
        try:
            fai.parent.mkdir(parents=True, exist_ok=True)
            write_fai(entries, fai)
            if compressed:
                write_gzi(blocks, gzi)
        except OSError as exc:
            why = "is stale (older than the FASTA) and " if fai.exists() else "is missing and "
            hint = "pass index_dir=<a writable folder> or index it once with `samtools faidx`"
            raise FastaIndexError(fasta, f"index {fai} {why}cannot be written ({exc.strerror or exc}); {hint}") from exc
    for entry in entries:
        if _end_offset(entry) > data_size:
            raise FastaFormatError(fasta, f"truncated: index {fai} says the record ends at byte "
                                          f"{_end_offset(entry)}, but the data has only {data_size} bytes (file "
                                          "changed or cut after indexing? delete the .fai to rebuild)",
                                   record=entry.name)
    return entries, blocks
