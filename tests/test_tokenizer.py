"""Byte tokenizer: the official ids (blt_facts §2), round trips and the invalid-UTF-8 policy."""
import pytest

from blt_repro.tokenizer import BOE_ID, BOS_ID, BPE_ID, EOS_ID, OFFSET, VOCAB_SIZE, ByteTokenizer

tok = ByteTokenizer()
FIXTURE_TEXT = "Let's check if these tokenizers match!"


def test_constants():
    assert (BOE_ID, BOS_ID, EOS_ID, BPE_ID, OFFSET, VOCAB_SIZE) == (0, 1, 2, 3, 4, 260)


def test_official_string_from_blt_facts():
    ids = tok.encode(FIXTURE_TEXT)
    assert ids[:5] == [1, 80, 105, 120, 43] and ids[-2:] == [37, 2]
    assert ids[1:-1] == [b + 4 for b in FIXTURE_TEXT.encode()]


def test_official_fixture_file(official_fixture):
    ref = official_fixture("tokenizer_data.json")
    for text, ids in zip(ref["texts"], ref["tokens"]):
        assert tok.encode(text) == ids


@pytest.mark.parametrize("text", ["", "a", "hello, world\n", "naïve café", "Ελληνικά 日本語 עברית", "🙂👍🏽👨‍👩‍👧", "\x7f\x01"])
def test_round_trip(text):
    ids = tok.encode(text)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID and all(OFFSET <= i < VOCAB_SIZE for i in ids[1:-1])
    assert len(ids) == len(text.encode()) + 2
    assert tok.decode(ids) == text and tok.decode(ids, errors="strict") == text


def test_all_bytes_round_trip():
    data = bytes(range(256))
    assert tok.decode_bytes(tok.encode(data)) == data


def test_invalid_utf8_policy():
    ids = tok.encode("ok 🙂", add_eos=False)[:-2]       # cut inside the 4-byte emoji
    assert tok.decode(ids) == "ok \ufffd"               # default: visible replacement character
    assert tok.decode(ids, errors="ignore") == "ok "    # official behaviour
    with pytest.raises(UnicodeDecodeError):
        tok.decode(ids, errors="strict")
    with pytest.raises(ValueError, match="errors must be"):
        tok.decode(ids, errors="bogus")


def test_bad_input():
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode([1, 260])
    with pytest.raises(ValueError, match="ids must be in"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="UTF-8"):
        tok.encode("\ud800")
    with pytest.raises(TypeError):
        tok.encode(None)


def test_specials_dropped_on_decode():
    assert tok.decode([BOE_ID, BOS_ID, ord("D") + OFFSET, EOS_ID, BPE_ID]) == "D"
