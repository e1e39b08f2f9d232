import os
import random

import pytest

from genomics.bgzf import write_bgzf
from genomics.errors import FastaFormatError, FastaIndexError
from genomics.fasta import FastaReader, n_runs, soft_mask


def _write(path, text):
    path.write_text(text)
    return path


def test_plain_and_bgzip_give_identical_slices(tmp_path, data_dir, index_dir):
    raw = (data_dir / "MT-orang.fa").read_bytes() + (data_dir / "chr17.hg19.part.fa").read_bytes()
    plain = tmp_path / "two.fa"
    plain.write_bytes(raw)
    packed = tmp_path / "two.fa.gz"
    write_bgzf(raw, packed, block_data=5000)  # many blocks, so slices straddle block boundaries
    a, b = FastaReader(plain, uppercase=False), FastaReader(packed, uppercase=False)
    assert a.lengths() == b.lengths() == {"MT_orang": 16499, "chr17": 40000}
    assert b.compressed and not a.compressed
    assert (tmp_path / "two.fa.gz.fai").is_file() and (tmp_path / "two.fa.gz.gzi").is_file()
    rng = random.Random(0)
    for _ in range(300):
        name = rng.choice(a.names)
        start = rng.randrange(a.length(name))
        end = rng.randrange(start, a.length(name) + 1)
        assert a.fetch(name, start, end) == b.fetch(name, start, end)
    assert b.header("MT_orang") == "MT_orang co:Z:comment"
    # a second open reuses the index, and gives the same answers
    assert FastaReader(packed).fetch("chr17", 39990) == a.fetch("chr17", 39990).upper()


def test_known_sequence_and_soft_mask(data_dir, index_dir):
    human = FastaReader(data_dir / "MT-human.fa", index_dir=index_dir)
    assert human.length("MT_human") == 16569
    assert human.fetch("MT_human", 0, 10) == "GATCACAGGT"  # rCRS starts GATCACAGGTCTATCACCC
    keep = FastaReader(data_dir / "chr17.hg19.part.fa", uppercase=False, index_dir=index_dir)
    masked = keep.fetch("chr17", 300, 340)
    assert masked == "GTGcctgcgacaaagctgaatgctatcatttaaaaactcc"
    assert soft_mask(masked).sum() == 37
    upper = FastaReader(data_dir / "chr17.hg19.part.fa", index_dir=index_dir)
    assert upper.fetch("chr17", 300, 340) == masked.upper()


def test_n_runs():
    assert n_runs("ACNNNGTnnA", min_length=2) == [(2, 5), (7, 9)]


@pytest.mark.parametrize("text, match", [
    ("ACGT\n>r1\nACGT\n", r"line 1: sequence text before the first '>'"),
    (">r1\nACGT\nAC1T\n", r"record 'r1', line 3: character '1' at column 3 is not an IUPAC"),
    (">r1\nACGT\nAC\nACGT\n", r"record 'r1', line 4: inconsistent line lengths"),
    (">r1\nACGT\nACGTA\n", r"record 'r1', line 3: line of 5 bases is longer"),
    (">r1\nACGT\n>\nACGT\n", r"line 3: header line '>' without a record name"),
    (">r1\nACGT\n>r1\nACGT\n", r"record 'r1', line 3: duplicate record name"),
    ("", r"no '>' header line found"),
])
def test_malformed_fasta_names_file_and_line(tmp_path, text, match):
    path = _write(tmp_path / "bad.fa", text)
    with pytest.raises(FastaFormatError, match=match) as info:
        FastaReader(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_bgzip_and_plain_gzip(tmp_path, data_dir):
    raw = (data_dir / "MT-human.fa").read_bytes()
    whole = tmp_path / "whole.fa.gz"
    write_bgzf(raw, whole, block_data=4000)
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes(whole.read_bytes()[:-100])
    with pytest.raises(FastaFormatError, match=r"cut\.fa\.gz.*truncated"):
        FastaReader(cut)
    import gzip
    plain_gz = tmp_path / "plain.fa.gz"
    plain_gz.write_bytes(gzip.compress(raw))
    with pytest.raises(FastaFormatError, match=r"plain\.fa\.gz.*not a BGZF block.*bgzip"):
        FastaReader(plain_gz)


def test_file_cut_after_indexing_is_reported_with_record(tmp_path, data_dir):
    path = tmp_path / "mt.fa"
    path.write_bytes((data_dir / "MT-human.fa").read_bytes())
    FastaReader(path)
    stamp = os.stat(path.with_suffix(".fa.fai")).st_mtime
    path.write_bytes(path.read_bytes()[:5000])
    os.utime(path, (stamp - 10, stamp - 10))  # the index now looks fresh but the data is short
    with pytest.raises(FastaFormatError, match=r"record 'MT_human'.*truncated"):
        FastaReader(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_index_folder_is_a_clear_error(tmp_path, data_dir):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "mt.fa"
    path.write_bytes((data_dir / "MT-human.fa").read_bytes())
    folder.chmod(0o555)
    try:
        with pytest.raises(FastaIndexError, match=r"mt\.fa.*cannot be written.*index_dir"):
            FastaReader(path)
        assert FastaReader(path, index_dir=tmp_path / "idx").length("MT_human") == 16569
    finally:
        folder.chmod(0o755)


def test_unwritable_index_path_is_a_clear_error(tmp_path, data_dir):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    with pytest.raises(FastaIndexError, match=r"MT-human\.fa.*cannot be written.*index_dir"):
        FastaReader(data_dir / "MT-human.fa", index_dir=blocker / "sub")


def test_fetch_outside_record_names_record(data_dir, index_dir):
    reader = FastaReader(data_dir / "MT-human.fa", index_dir=index_dir)
    with pytest.raises(FastaFormatError, match=r"record 'MT_human'.*outside the record"):
        reader.fetch("MT_human", 16000, 17000)
    with pytest.raises(FastaFormatError, match="no record named 'chrZ'"):
        reader.fetch("chrZ", 0, 1)


def test_strict_window_error_names_file_record_and_line(tmp_path):
    from genomics.datasets import encode_window
    from genomics.tokenizer import DNATokenizer

    path = tmp_path / "amb.fa"
    path.write_text(">r1\nACGTACGTAC\n>r2\nACGTACGTAC\nACGTRCGTAC\n")
    reader = FastaReader(path)  # R is a valid IUPAC code, so indexing accepts it
    ids, real = encode_window(reader, DNATokenizer(), "r2", 10, 20, 12)
    assert real == 10 and ids[4] == DNATokenizer.n_id and ids[10:].tolist() == [0, 0]
    with pytest.raises(FastaFormatError, match=r"amb\.fa, record 'r2', line 5: character 'R' at position 4 is an "
                                               r"IUPAC ambiguity code \(strict mode\) \(base 14 of the record\)"):
        encode_window(reader, DNATokenizer(strict=True), "r2", 10, 20, 12)
