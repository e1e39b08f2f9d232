"""Error types of the genomics package.

Every problem with user-supplied sequence files surfaces as a ``ValueError`` subclass whose message names the file
and, where it is known, the record and the 1-based line, so that a failure deep inside a data loader still tells the
user which file to fix.
"""

from __future__ import annotations

import os


class SequenceFileError(ValueError):
    """A sequence or interval file is unusable; the message names the file and the place."""

    def __init__(self, path: str | os.PathLike, problem: str, record: str | None = None, line: int | None = None):
        self.path = os.fspath(path)
        self.problem = problem
        self.record = record
        self.line = line
        where = [f"file {self.path}"]
        if record is not None:
            where.append(f"record '{record}'")
        if line is not None:
            where.append(f"line {line}")
        super().__init__(f"{', '.join(where)}: {problem}")


class FastaFormatError(SequenceFileError):
    """The FASTA text itself is malformed (no header, bad characters, ragged lines, truncated)."""


class FastaIndexError(SequenceFileError):
    """The .fai/.gzi index cannot be read, written or trusted."""


class BedFormatError(SequenceFileError):
    """A BED line is malformed or names a record/coordinates the FASTA does not have."""


class TokenizerError(ValueError):
    """A sequence holds characters the tokenizer refuses (strict mode or non-nucleotide symbols)."""

    def __init__(self, message: str, position: int | None = None):
        self.position = position
        super().__init__(message)
