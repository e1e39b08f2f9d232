import pytest
import torch

from genomics.errors import TokenizerError
from genomics.tokenizer import BOS_ID, EOS_ID, N_ID, DNATokenizer, reverse_complement


def test_round_trip_and_fixed_ids():
    tok = DNATokenizer()
    ids = tok.encode("ACGTN", add_bos=True, add_eos=True)
    assert ids.tolist() == [BOS_ID, 5, 6, 7, 8, 9, EOS_ID]
    assert tok.decode(ids) == "ACGTN"
    assert tok.decode(ids, skip_special=False) == "[BOS]ACGTN[EOS]"


def test_lowercase_maps_like_uppercase_not_unknown():
    tok = DNATokenizer()
    assert torch.equal(tok.encode("acgtn"), tok.encode("ACGTN"))


def test_iupac_codes_become_n_or_raise_in_strict_mode():
    assert DNATokenizer().encode("ARYKmb").tolist() == [5] + [N_ID] * 5
    with pytest.raises(TokenizerError, match="'R' at position 1 is an IUPAC ambiguity code"):
        DNATokenizer(strict=True).encode("AR")


def test_non_nucleotides_always_raise():
    with pytest.raises(TokenizerError, match="'-' at position 2 is not a nucleotide"):
        DNATokenizer().encode("AC-G")
    with pytest.raises(TokenizerError, match="non-ASCII"):
        DNATokenizer().encode("ACGé")


def test_reverse_complement_string_and_ids_agree():
    seq = "AACGTTTGCaNgR"
    assert reverse_complement(seq) == "YcNtGCAAACGTT"
    assert reverse_complement(reverse_complement(seq)) == seq
    tok = DNATokenizer()
    plain = "GATTACANNC"
    assert tok.decode(tok.reverse_complement_ids(tok.encode(plain))) == reverse_complement(plain) == "GNNTGTAATC"
    batch = torch.stack([tok.encode(plain), tok.encode(plain[::-1])])
    assert tok.reverse_complement_ids(batch)[1].tolist() == tok.encode("CTAATGTNNG").tolist()  # = complement(plain)
