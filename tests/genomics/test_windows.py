import numpy as np
import pytest

from genomics.classify_data import SequenceClassificationDataModule
from genomics.datasets import GenomeWindowDataset
from genomics.fasta import FastaReader
from genomics.intervals import Interval, by_split, merge_touching, read_bed, split_records
from genomics.pretrain_data import GenomePretrainDataModule, warmup_length
from genomics.synthetic import make_species_genomes
from genomics.tokenizer import BOS_ID, IGNORE_INDEX, PAD_ID, DNATokenizer
from genomics.windows import WindowIdSampler, WindowPicker


def test_picker_draws_only_full_windows_inside_intervals():
    intervals = [Interval("a", 0, 100), Interval("a", 150, 160), Interval("b", 10, 30)]
    picker = WindowPicker(intervals, length=20)
    assert [iv.chrom for iv in picker.intervals] == ["a", "b"]  # the 10-base interval cannot hold a window
    assert picker.num_starts == 81 + 1
    seen = set()
    for pos in range(picker.num_starts):
        iv, start, end = picker.window(pos)
        assert iv.start <= start and end <= iv.end and end - start == 20
        seen.add((iv.chrom, start))
    assert len(seen) == picker.num_starts  # every start position exactly once: offsets are not always left-most
    padded = WindowPicker(intervals, length=20, short="pad")
    assert any(end - start == 10 for iv, start, end in (padded.window(p) for p in range(padded.num_starts)))


def test_region_split_windows_never_cross_boundaries(data_dir, index_dir):
    dm = GenomePretrainDataModule(str(data_dir / "MT-human.fa"), length=256, index_dir=str(index_dir),
                                  train_windows=300, valid_windows=100, test_windows=100)
    dm.setup()
    bounds = {s: [(iv.start, iv.end) for iv in dm.intervals[s]] for s in ("train", "valid", "test")}
    assert bounds == {"train": [(0, 13255)], "valid": [(13255, 14912)], "test": [(14912, 16569)]}
    for split, count in (("train", 300), ("valid", 100), ("test", 100)):
        ds = dm._dataset(split, 256, count)
        for wid in range(count):
            _, start, end, _ = ds.locate(wid)
            (lo, hi), = bounds[split]
            assert lo <= start and end <= hi and end - start == 256


def test_bed_splits_merge_abutting_intervals_and_validate(tmp_path, data_dir, index_dir):
    bed = tmp_path / "seq.bed"
    bed.write_text("MT_human\t0\t4000\ttrain\nMT_human\t4000\t8000\ttrain\nMT_human\t8000\t9000\tvalid\n"
                   "MT_human\t9000\t12000\ttest\nMT_human\t12000\t16000\ttrain\n")
    reader = FastaReader(data_dir / "MT-human.fa", index_dir=index_dir)
    groups = {s: merge_touching(v) for s, v in by_split(read_bed(bed, reader.lengths()), bed).items()}
    assert [(iv.start, iv.end) for iv in groups["train"]] == [(0, 8000), (12000, 16000)]
    dm = GenomePretrainDataModule(str(data_dir / "MT-human.fa"), bed=str(bed), length=6000,
                                  index_dir=str(index_dir), train_windows=50)
    dm.setup()
    ds = dm._dataset("train", 6000, 50)
    assert all(end <= 8000 for _, start, end, _ in map(ds.locate, range(50)))  # only the merged block fits
    bad = tmp_path / "bad.bed"
    bad.write_text("MT_human\t10\t20000\ttrain\n")
    with pytest.raises(ValueError, match=r"bad\.bed, line 1: end 20000 is past the end of 'MT_human'"):
        read_bed(bad, reader.lengths())


def test_train_windows_change_each_epoch_eval_windows_do_not():
    train = WindowIdSampler(10, fresh_each_epoch=True, num_replicas=1, rank=0)
    valid = WindowIdSampler(10, fresh_each_epoch=False, num_replicas=1, rank=0)
    first_train, first_valid = list(train), list(valid)
    train.set_epoch(1)
    valid.set_epoch(1)
    assert set(first_train).isdisjoint(train)
    assert list(valid) == first_valid == list(range(10))


def test_ranks_get_disjoint_windows():
    ids = [list(WindowIdSampler(10, True, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(ids[0]) == len(ids[1]) == 5 and set(ids[0]).isdisjoint(ids[1])
    for epoch in (0, 3):
        per_rank = []
        for rank in (0, 1):
            sampler = WindowIdSampler(7, False, num_replicas=2, rank=rank)
            sampler.set_epoch(epoch)
            per_rank.append(list(sampler))
        assert sorted(set(per_rank[0]) | set(per_rank[1])) == list(range(7))


def test_lm_sample_layout_and_padding_masked(data_dir, index_dir):
    reader = FastaReader(data_dir / "MT-human.fa", index_dir=index_dir)
    ds = GenomeWindowDataset([reader], [Interval("MT_human", 100, 110)], length=16, num_windows=4, seed=0,
                             short="pad")
    sample = ds[0]
    expected = DNATokenizer().encode(reader.fetch("MT_human", 100, 110)).tolist()
    assert sample["input_ids"][0] == BOS_ID and sample["input_ids"][1:11].tolist() == expected
    assert sample["input_ids"][11:].tolist() == [PAD_ID] * 5
    assert sample["labels"][:10].tolist() == expected and (sample["labels"][10:] == IGNORE_INDEX).all()


def test_reverse_complement_augmentation(data_dir, index_dir):
    reader = FastaReader(data_dir / "MT-human.fa", index_dir=index_dir)
    ivs = [Interval("MT_human", 0, 16569)]
    plain = GenomeWindowDataset([reader], ivs, 64, 40, seed=3, rc_prob=0.0)
    flipped = GenomeWindowDataset([reader], ivs, 64, 40, seed=3, rc_prob=1.0)
    tok = DNATokenizer()
    for wid in range(5):
        _, start, end, _ = plain.locate(wid)
        assert flipped.locate(wid)[1] == start
        assert flipped[wid]["labels"].tolist() == tok.reverse_complement_ids(plain[wid]["labels"]).tolist()


def test_warmup_schedule_doubles_and_keeps_tokens():
    assert [warmup_length(e, 1024, 128, 2) for e in range(9)] == [128, 128, 256, 256, 512, 512, 1024, 1024, 1024]
    assert warmup_length(5, 1024, None, 1) == 1024


def test_record_split_is_stratified_and_leak_free(tmp_path):
    paths = make_species_genomes(tmp_path, ("human", "gorilla"), n_chromosomes=5, chromosome_length=6000)
    dm = SequenceClassificationDataModule(fasta_files={k: str(v) for k, v in paths.items()}, length=512,
                                          train_windows=60, valid_windows=20, test_windows=20)
    assert dm.prepare_classes() == ["human", "gorilla"]
    held_out = []
    for label in range(2):
        names = {s: {iv.chrom for iv in dm.intervals[s][label]} for s in ("train", "valid", "test")}
        assert len(names["valid"]) == len(names["test"]) == 1 and len(names["train"]) == 3
        assert not (names["train"] & names["valid"]) and not (names["train"] & names["test"])
        held_out.append((names["valid"], names["test"]))
    assert held_out[0] == held_out[1]  # homologous chromosomes are held out together in every class
    ds = dm._dataset("valid", 20)
    labels = [ds[i]["label"].item() for i in range(20)]
    assert labels.count(0) == labels.count(1) == 10
    for wid in range(20):
        label, iv, start, end, _ = ds.locate(wid)
        assert iv in dm.intervals["valid"][label] and iv.start <= start < end <= iv.end


def test_split_records_rejects_bad_fractions():
    with pytest.raises(ValueError, match="sum to 1"):
        split_records([(0, "a", 10)], (0.5, 0.1, 0.1))
    parts = split_records([(0, "a", 1000)], (0.8, 0.1, 0.1), by="auto")
    assert [(iv.start, iv.end) for s in ("train", "valid", "test") for iv in parts[s]] == \
        [(0, 800), (800, 900), (900, 1000)]
    assert np.isclose(sum(len(iv) for s in parts for iv in parts[s]), 1000)


def test_plain_and_bgzip_fasta_give_the_same_windows(tmp_path, data_dir):
    from genomics.bgzf import write_bgzf

    plain = tmp_path / "chr17.fa"
    plain.write_bytes((data_dir / "chr17.hg19.part.fa").read_bytes())
    packed = tmp_path / "chr17.fa.gz"
    write_bgzf(plain.read_bytes(), packed, block_data=3000)
    made = []
    for path in (plain, packed):
        dm = GenomePretrainDataModule(str(path), length=500, train_windows=40, rc_prob=0.5)
        dm.setup()
        ds = dm._dataset("train", 500, 40)
        made.append([ds[i]["labels"].tolist() for i in range(40)])
    assert made[0] == made[1]
