"""The n-gram entropy model: normalisation, parity with the naive dict reference (entropies, static and adaptive
bits per byte), the index convention, row independence, truncation, errors, and incompressible noise."""
import math

import numpy as np
import pytest
import torch

from blt_repro.ngram import NaiveKneserNey, NGramEntropyModel, text_entropies
from blt_repro.ngram_counts import as_documents, kn_discounts
from blt_repro.plots import blog_patches, plot_entropies
from blt_repro.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
TRAIN = [
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want "
    "of a wife. However little known the feelings or views of such a man may be on his first entering a "
    "neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is considered "
    "the rightful property of some one or other of their daughters.",
    "To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer the slings and arrows "
    "of outrageous fortune, or to take arms against a sea of troubles, and by opposing end them.",
    "Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do.",
    "ab",
    "naïve café — Ελληνικά",                                                 # multi-byte UTF-8
]
VAL = ["It is a truth that the question of fortune is in the minds of men.", "Alice was tired.", "zq"]


def rows_tokens() -> torch.Tensor:
    "Two rows: BOS + text + EOS, and a row with two documents packed and BOE padding."
    a = TOK.encode("a single man in possession")[:24]
    b = TOK.encode("Xq to be")[:8] + TOK.encode("Alice was") + [0] * 5
    return torch.tensor([a, b])                                               # [2, 24]


@pytest.fixture(scope="module")
def models():
    "(fast, naive) pairs with Chen-Goodman discounts, for several orders (some above 8: re-ranked codes)."
    return {n: (NGramEntropyModel(n, discounts="estimated").fit(TRAIN), NaiveKneserNey(n).fit(TRAIN))
            for n in (1, 2, 3, 6, 9, 13)}


@pytest.mark.parametrize("order", [1, 2, 3, 6, 9, 13])
def test_distribution_sums_to_one_and_matches_entropies(models, order):
    fast, _ = models[order]
    tokens = rows_tokens()
    P = fast.next_byte_probs(tokens)                                          # [2, 24, 256]
    assert P.shape == (2, 24, 256) and (P > 0).all()
    torch.testing.assert_close(P.sum(-1), torch.ones(2, 24, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(fast.entropies(tokens).double(), -(P * P.log()).sum(-1), atol=2e-6, rtol=1e-6)


@pytest.mark.parametrize("order", [1, 2, 3, 6, 9, 13])
def test_entropies_equal_naive(models, order):
    fast, naive = models[order]
    tokens = rows_tokens()
    H = fast.entropies(tokens)
    assert H.dtype == torch.float32 and H.shape == tokens.shape and torch.isfinite(H).all()
    torch.testing.assert_close(H.double(), naive.entropies(tokens), atol=2e-6, rtol=1e-6)


@pytest.mark.parametrize("order", [1, 2, 3, 6, 9, 13])
def test_bpb_equal_naive(models, order):
    fast, naive = models[order]
    assert fast.bpb(VAL) == pytest.approx(naive.bpb(VAL), abs=1e-10)
    np.testing.assert_allclose(fast.discounts, np.array(naive.D[1:]), atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 6, 9, 13])
def test_adaptive_equals_sequential_reference(order):
    fast = NGramEntropyModel(order, discounts="estimated").fit(TRAIN)
    naive = NaiveKneserNey(order).fit(TRAIN)                                  # updates its dicts byte by byte
    got, want = fast.bpb(VAL, adaptive=True), naive.bpb(VAL, adaptive=True)
    assert abs(got - want) < 1e-9
    assert fast.bpb(VAL) == pytest.approx(NaiveKneserNey(order).fit(TRAIN).bpb(VAL), abs=1e-10)  # fast is unchanged


def test_adaptive_is_causal():
    "Byte t's probability does not depend on bytes after t (changing the tail leaves the head's scores alone)."
    m = NGramEntropyModel(5, discounts="estimated").fit(TRAIN)
    a = m.log2_probs(["the question of fortune, the question of fortune"], adaptive=True)
    b = m.log2_probs(["the question of fortune, XXXXXXXXXXXXXXXXXXXXXXXX"], adaptive=True)
    np.testing.assert_array_equal(a[:25], b[:25])
    static = m.log2_probs(["the question of fortune, the question of fortune"])
    assert a[-20:].sum() > static[-20:].sum()                                # the repeat is learned while reading


def test_index_convention_deterministic_text():
    "Position i is the uncertainty about byte i+1: after a few bytes of 'abab...' it is ~0 and p(byte i+1) ~1."
    m = NGramEntropyModel(4, discounts="estimated").fit(["ab" * 500, "the cat sat on the mat"])
    ids = torch.tensor([TOK.encode("ab" * 10, add_eos=False)])                # [1, 21]
    H = m.entropies(ids)[0]
    p_next = m.next_byte_probs(ids)[0, :-1].gather(1, ids[0, 1:, None] - 4)[:, 0]
    assert (H[3:] < 0.1).all() and (p_next[3:] > 0.99).all()
    assert H[0] > 1.0                                                         # at BOS: 'a' or 't' (two documents)


def test_rows_are_independent():
    m = NGramEntropyModel(5, discounts="estimated").fit(TRAIN)
    t = rows_tokens()
    batch = torch.cat([t, t[:1], t[1:]])                                     # rows 0, 1, 0, 1
    H = m.entropies(batch)
    torch.testing.assert_close(H[0], H[2], rtol=0, atol=0)
    torch.testing.assert_close(H[1], H[3], rtol=0, atol=0)
    torch.testing.assert_close(H[1], m.entropies(t[1:])[0], rtol=0, atol=0)
    small = NGramEntropyModel(5, discounts="estimated", chunk_positions=24).fit(TRAIN)   # one row per chunk
    torch.testing.assert_close(small.entropies(batch), H, rtol=0, atol=0)


def test_chunked_static_scoring_is_exact():
    "Static scoring in chunks of positions (chunk boundaries inside documents) equals one chunk."
    one = NGramEntropyModel(7, discounts="estimated").fit(TRAIN)
    many = NGramEntropyModel(7, discounts="estimated", chunk_positions=13).fit(TRAIN)
    np.testing.assert_array_equal(many.log2_probs(VAL), one.log2_probs(VAL))


def test_boundaries_restart_the_context():
    "A document packed after EOS gets the same entropies as the same document alone (BOS/EOS/BOE are boundaries)."
    m = NGramEntropyModel(6, discounts="estimated").fit(TRAIN)
    doc = TOK.encode("to be or not")
    alone = m.entropies(torch.tensor([doc]))[0]
    packed = m.entropies(torch.tensor([TOK.encode("whatever text") + doc]))[0]
    torch.testing.assert_close(packed[-len(doc):], alone, rtol=0, atol=0)


def test_truncated_equals_direct_fit():
    full = NGramEntropyModel(12, discounts="estimated").fit(TRAIN)
    for n in (1, 3, 8, 10):
        a, b = full.truncated(n), NGramEntropyModel(n, discounts="estimated").fit(TRAIN)
        assert a.bpb(VAL) == pytest.approx(b.bpb(VAL), abs=1e-12)
        assert a.bpb(VAL, adaptive=True) == pytest.approx(b.bpb(VAL, adaptive=True), abs=1e-12)
        torch.testing.assert_close(a.entropies(rows_tokens()), b.entropies(rows_tokens()), rtol=0, atol=0)


def test_explicit_discounts_and_tuning_fallback():
    D = np.full((3, 3), [0.5, 1.0, 1.5])
    m = NGramEntropyModel(3, discounts=D).fit(TRAIN)
    np.testing.assert_array_equal(m.discounts, D)
    assert m.bpb(VAL) == pytest.approx(NaiveKneserNey(3, discounts=D).fit(TRAIN).bpb(VAL), abs=1e-10)
    tuned = NGramEntropyModel(3).fit(TRAIN)                                   # too little data to hold out: estimates
    assert "too little data" in tuned.tuning["note"]
    np.testing.assert_allclose(tuned.discounts, NGramEntropyModel(3, "estimated").fit(TRAIN).discounts)


def test_tuned_discounts_help_on_held_out_text():
    text = " ".join(TRAIN[:3])
    docs = [text[i:] + " " + text[:i] for i in range(0, 600, 20)]           # 30 rotations: >= 10 docs, > 1000 dev bytes
    m = NGramEntropyModel(4).fit(docs)
    assert m.tuning["dev_bpb_tuned"] <= m.tuning["dev_bpb_estimated"] + 1e-9
    assert np.all((m.discounts > 0) & (m.discounts <= [1, 2, 3]))


def test_kn_discounts_formula():
    counts = np.array([1] * 50 + [2] * 20 + [3] * 10 + [4] * 6)
    y = 50 / 90
    np.testing.assert_allclose(kn_discounts(counts), [1 - 2 * y * 20 / 50, 2 - 3 * y * 10 / 20, 3 - 4 * y * 6 / 10])


def test_uniform_random_bytes_cost_about_8_bits():
    rng = np.random.default_rng(0)
    docs = [bytes(rng.integers(1, 256, 20_000, dtype=np.uint8)) for _ in range(5)]   # no NUL
    m = NGramEntropyModel(3, discounts="estimated").fit(docs[:4])
    assert m.bpb(docs[4]) == pytest.approx(8.0, abs=0.1)
    assert m.bpb(docs[4], adaptive=True) == pytest.approx(8.0, abs=0.1)


def test_data_forms():
    m = NGramEntropyModel(3, discounts="estimated")
    a = m.fit("hello world").bpb("hello")
    b = NGramEntropyModel(3, discounts="estimated").fit(b"hello world").bpb(b"hello")
    c = NGramEntropyModel(3, discounts="estimated").fit(iter(["hello world"])).bpb(["hello", ""])
    assert a == b == c
    assert as_documents(["a", b"b", ""]) == [b"a", b"b"]


def test_clear_errors():
    m = NGramEntropyModel(3, discounts="estimated").fit(TRAIN)
    t = rows_tokens()
    with pytest.raises(RuntimeError, match="not fitted"): NGramEntropyModel(3).entropies(t)
    with pytest.raises(RuntimeError, match="not fitted"): NGramEntropyModel(3).bpb("abc")
    with pytest.raises(RuntimeError, match="only counted"): NGramEntropyModel(3).count(TRAIN).entropies(t)
    for bad in (0, 33, 2.5, True, "8"):
        with pytest.raises(ValueError, match="order must be an int"): NGramEntropyModel(bad)
    with pytest.raises(ValueError, match="discounts must be"): NGramEntropyModel(3, discounts="magic")
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"): NGramEntropyModel(3, discounts=np.ones((2, 3)))
    with pytest.raises(ValueError, match="NUL byte"): NGramEntropyModel(3).fit(["ok", "bad\x00"])
    with pytest.raises(ValueError, match="NUL byte"): m.bpb(b"bad\x00")
    with pytest.raises(ValueError, match="no data"): NGramEntropyModel(3).fit(["", ""])
    with pytest.raises(TypeError, match="str or bytes"): NGramEntropyModel(3).fit([1, 2])
    with pytest.raises(TypeError, match="integer tensor"): m.entropies(t.float())
    with pytest.raises(TypeError, match="integer tensor"): m.entropies(t > 3)
    with pytest.raises(ValueError, match="must be 2-D"): m.entropies(t[0])
    with pytest.raises(ValueError, match="token ids must be in 0..259"): m.entropies(t + 300)
    with pytest.raises(TypeError, match="torch.Tensor"): m.entropies([[1, 2]])
    with pytest.raises(ValueError, match="order must be in 1..3"): m.truncated(4)
    assert m.entropies(t.numpy()).shape == t.shape                           # numpy ids are accepted too


def test_moved_names_still_import():
    "Names that moved to `ngram_counts`, `plots` and `bench` stay importable from `ngram`."
    from blt_repro import bench, ngram, ngram_counts, plots
    assert ngram.Level is ngram_counts.Level and ngram.context_bytes is ngram_counts.context_bytes
    assert ngram.plot_entropies is plots.plot_entropies and ngram.bench_entropies is bench.bench_entropies


def test_numpy_tokens_and_empty_batch():
    m = NGramEntropyModel(3, discounts="estimated").fit(TRAIN)
    t = rows_tokens()
    torch.testing.assert_close(m.entropies(t.numpy()), m.entropies(t), rtol=0, atol=0)
    assert m.entropies(torch.zeros(0, 5, dtype=torch.long)).shape == (0, 5)


def test_plot_and_patch_helpers():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = NGramEntropyModel(3, discounts="estimated").fit(TRAIN)
    text = "To be a man."
    h = text_entropies(m, text)
    assert h.shape == (len(text),)
    fig, ax = plt.subplots()
    plot_entropies(ax, text, h, threshold=1.0, unit="bits", title="t")
    plot_entropies(ax, text, m.entropies(torch.tensor([TOK.encode(text, add_eos=False)]))[0], unit="nats")  # len+1
    assert ax.get_ylabel() == "entropy (nats)"
    plt.close(fig)
    with pytest.raises(ValueError, match="entropies for"): plot_entropies(ax, text, h[:3])
    with pytest.raises(ValueError, match="unit"): plot_entropies(ax, text, h, unit="dB")
    assert blog_patches("I walked", [2, 1, 5]) == ["Patch 1: 'I ' (2 bytes)", "Patch 2: 'w' (1 bytes)",
                                                   "Patch 3: 'alked' (5 bytes)"]
    with pytest.raises(ValueError, match="sum to"): blog_patches("I walked", [2, 1])
