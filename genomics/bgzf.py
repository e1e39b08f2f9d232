"""Blocked GNU zip (BGZF, as written by ``bgzip``): a writer and a random-access reader.

pyfaidx 0.9 reads BGZF only through Biopython (``Bio.bgzf``), which is not a dependency of this project, so the few
operations the FASTA reader needs live here: a BGZF is a series of gzip members (each at most 64 KiB of data) whose
header carries a ``BC`` extra field with the member size, closed by a fixed 28-byte empty member (EOF marker).
Random access uses the block table (compressed start, uncompressed start) which is also what samtools stores in the
``.gzi`` file (little-endian uint64 count, then uint64 pairs for every block after the first).
"""

from __future__ import annotations

import bisect
import os
import struct
import zlib
from pathlib import Path

from genomics.errors import FastaFormatError, FastaIndexError

GZIP_MAGIC = b"\x1f\x8b"
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
MAX_BLOCK_DATA = 0xFF00  # htslib's payload limit per block, so the compressed member always fits in 64 KiB


def is_gzip(path: str | os.PathLike) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def _compress_block(data: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    cdata = compressor.compress(data) + compressor.flush()
    block_size = 18 + len(cdata) + 8
    header = struct.pack("<BBBBIBBHBBHH", 31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, block_size - 1)
    return header + cdata + struct.pack("<II", zlib.crc32(data), len(data))


def write_bgzf(data: bytes, path: str | os.PathLike, level: int = 6, block_data: int = MAX_BLOCK_DATA) -> None:
    """Write ``data`` as a BGZF file (same layout as ``bgzip``); ``block_data`` < 64 KiB forces more blocks in tests."""
    if not 0 < block_data <= MAX_BLOCK_DATA:
        raise ValueError(f"block_data must be in 1..{MAX_BLOCK_DATA}, got {block_data}")
    with open(path, "wb") as out:
        for start in range(0, len(data), block_data):
            out.write(_compress_block(data[start : start + block_data], level))
        out.write(BGZF_EOF)


def _block_size(path: Path, handle, offset: int) -> int:
    header = handle.read(12)
    if len(header) < 12:
        raise FastaFormatError(path, f"truncated BGZF block header at byte {offset}")
    if header[:2] != GZIP_MAGIC or header[2] != 8 or not header[3] & 4:
        raise FastaFormatError(path, f"not a BGZF block at byte {offset}; plain gzip is not seekable, recompress with "
                                     "`bgzip` (gunzip file.fa.gz && bgzip file.fa)")
    xlen = struct.unpack("<H", header[10:12])[0]
    extra = handle.read(xlen)
    pos = 0
    while pos + 4 <= len(extra):
        si1, si2, slen = extra[pos], extra[pos + 1], struct.unpack("<H", extra[pos + 2 : pos + 4])[0]
        if si1 == 66 and si2 == 67 and slen == 2:
            return struct.unpack("<H", extra[pos + 4 : pos + 6])[0] + 1
        pos += 4 + slen
    raise FastaFormatError(path, f"gzip member at byte {offset} lacks the BGZF 'BC' field; recompress with `bgzip`")


def scan_blocks(path: str | os.PathLike) -> list[tuple[int, int]]:
    """(compressed offset, uncompressed offset) of every data block, reading only block headers and trailers."""
    path = Path(path)
    size = path.stat().st_size
    blocks: list[tuple[int, int]] = []
    coffset = uoffset = 0
    saw_eof = False
    with open(path, "rb") as handle:
        while coffset < size:
            handle.seek(coffset)
            bsize = _block_size(path, handle, coffset)
            if coffset + bsize > size:
                raise FastaFormatError(path, f"truncated: BGZF block at byte {coffset} needs {bsize} bytes, "
                                             f"file ends after {size - coffset}")
            handle.seek(coffset + bsize - 4)
            isize = struct.unpack("<I", handle.read(4))[0]
            if isize == 0:
                saw_eof = coffset + bsize == size
            else:
                blocks.append((coffset, uoffset))
            coffset += bsize
            uoffset += isize
    if not saw_eof:
        raise FastaFormatError(path, "truncated: the BGZF end-of-file marker is missing (incomplete download or copy?)")
    blocks.append((size, uoffset))  # sentinel: end of data
    return blocks


def write_gzi(blocks: list[tuple[int, int]], path: str | os.PathLike) -> None:
    """samtools-compatible .gzi (omits the first block, which always starts at 0/0, and the sentinel)."""
    entries = blocks[1:-1]
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(entries)))
        for coffset, uoffset in entries:
            out.write(struct.pack("<QQ", coffset, uoffset))


class BgzfReader:
    """Reads arbitrary uncompressed byte ranges of a BGZF file; keeps the most recently inflated block cached."""

    def __init__(self, path: str | os.PathLike, blocks: list[tuple[int, int]] | None = None):
        self.path = Path(path)
        self.blocks = blocks if blocks is not None else scan_blocks(self.path)
        self._uoffsets = [u for _, u in self.blocks]
        self._handle = None
        self._pid = None
        self._cache_index = -1
        self._cache_data = b""

    @property
    def size(self) -> int:
        return self.blocks[-1][1]

    def _file(self):
        if self._handle is None or self._pid != os.getpid():  # a forked DataLoader worker needs its own handle
            self._handle = open(self.path, "rb")
            self._pid = os.getpid()
        return self._handle

    def _inflate(self, index: int) -> bytes:
        if index != self._cache_index:
            start, end = self.blocks[index][0], self.blocks[index + 1][0]
            handle = self._file()
            handle.seek(start)
            raw = handle.read(end - start)
            xlen = struct.unpack("<H", raw[10:12])[0]
            try:
                data = zlib.decompress(raw[12 + xlen : -8], -15)
            except zlib.error as exc:
                raise FastaFormatError(self.path, f"corrupt BGZF block at byte {start}: {exc}") from exc
            self._cache_index, self._cache_data = index, data
        return self._cache_data

    def read(self, start: int, length: int) -> bytes:
        end = min(start + length, self.size)
        if start < 0 or start > self.size:
            raise FastaIndexError(self.path, f"offset {start} outside the uncompressed size {self.size}")
        parts = []
        index = bisect.bisect_right(self._uoffsets, start) - 1
        pos = start
        while pos < end:
            data = self._inflate(index)
            ustart = self._uoffsets[index]
            piece = data[pos - ustart : end - ustart]
            parts.append(piece)
            pos += len(piece)
            index += 1
        return b"".join(parts)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
