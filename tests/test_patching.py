"""Patching: the official golden vectors (blt_facts §4.7, §5), property tests, online == batch, parity with transformers."""
import math
import warnings

import pytest
import torch

from blt_repro.patching import (
    DEFAULT_THRESHOLD, calibrate_threshold, check_lengths, decoder_patch_ids_from_lengths,
    entropy_patch_lengths, entropy_start_mask, lengths_from_start_mask,
    mean_patch_size, patch_ids_from_lengths, space_like, space_patch_lengths, split_long_patches,
    start_mask_from_lengths, static_patch_lengths)
from blt_repro.bench import global_patch_lengths_loop
from blt_repro.incremental import IncrementalPatcher, pad_lengths
from blt_repro.plots import format_patches
from blt_repro.tokenizer import ByteTokenizer

SENTENCE = "Daenerys Targaryen is in Game of Thrones, a fantasy epic by George R.R. Martin."
GLOBAL = [1, 1, 1, 1, 1, 15, 3, 3, 1, 1, 3, 12, 1, 1, 1, 1, 1, 5, 5, 1, 2, 1, 19]
MONOTONIC = [1, 1, 18, 3, 3, 5, 12, 2, 8, 5, 3, 20]
GLOBAL_MONOTONIC = [1, 1, 2, 16, 3, 3, 5, 12, 2, 2, 6, 5, 3, 20]
BUDGET4 = [1, 1, 1, 1, 1, 15, 3, 3, 1, 4, 12, 2, 1, 1, 1, 5, 5, 3, 1, 19]
MAX8 = [1, 1, 1, 1, 1, 8, 7, 3, 3, 1, 1, 3, 8, 4, 1, 1, 1, 1, 1, 5, 5, 1, 2, 1, 8, 8, 3]
SPACE = [1, 9, 10, 3, 3, 5, 3, 8, 3, 8, 5, 3, 7, 2, 2, 8, 1]


@pytest.fixture
def official(official_fixture):
    "(token ids [1,81], entropies [1,81], patch-id column) of the official fixture, or skip."
    fx = official_fixture("tokens_with_entropies.json")
    col = lambda name: [fx[name][str(i)] for i in range(len(fx[name]))]
    return torch.tensor([col("token_ids")]), torch.tensor([col("entropies")]), col("patch")


def sentence_ids():
    return torch.tensor([ByteTokenizer().encode(SENTENCE)])


# ------------------------------------------------------------------ golden vectors (§4.7, §5)
def test_fixture_tokens_are_the_sentence(official):
    ids, _, _ = official
    assert torch.equal(ids, sentence_ids())


@pytest.mark.parametrize("include_next_token", [False, True])
def test_golden_global(official, include_next_token):
    _, ent, _ = official
    want = GLOBAL[:-1] + [GLOBAL[-1] + include_next_token]
    assert entropy_patch_lengths(ent, DEFAULT_THRESHOLD, include_next_token=include_next_token)[0].tolist() == want
    assert global_patch_lengths_loop(ent[0].tolist(), DEFAULT_THRESHOLD, include_next_token) == want
    ip = IncrementalPatcher("entropy", DEFAULT_THRESHOLD)
    ip.extend(entropies=ent[0].tolist())
    assert ip.lengths(include_next_token) == want


def test_golden_patch_ids_and_decoder_ids(official):
    _, ent, patch_col = official
    assert patch_ids_from_lengths(entropy_patch_lengths(ent), 81)[0].tolist() == patch_col
    L = entropy_patch_lengths(ent, include_next_token=True)
    assert patch_ids_from_lengths(L, 81)[0].tolist() == patch_col
    assert decoder_patch_ids_from_lengths(L, 81)[0, :9].tolist() == [0, 1, 2, 3, 4, 4, 4, 4, 4]
    assert len(GLOBAL) == 23 and abs(81 / 23 - 3.52) < 0.01


def test_golden_other_modes(official):
    _, ent, _ = official
    assert entropy_patch_lengths(ent, DEFAULT_THRESHOLD, monotonic=True)[0].tolist() == MONOTONIC
    assert entropy_patch_lengths(ent, DEFAULT_THRESHOLD, threshold_add=0.0)[0].tolist() == GLOBAL_MONOTONIC
    assert entropy_patch_lengths(ent, None, patch_size=4)[0].tolist() == BUDGET4
    assert split_long_patches(entropy_patch_lengths(ent), 8)[0].tolist() == MAX8


def test_golden_other_modes_next_token(official):
    _, ent, _ = official
    for kw, want in [(dict(monotonic=True), MONOTONIC), (dict(threshold_add=0.0), GLOBAL_MONOTONIC)]:
        assert entropy_patch_lengths(ent, include_next_token=True, **kw)[0].tolist() == want[:-1] + [want[-1] + 1]


def test_golden_space():  # needs only the sentence: always runs
    ids = sentence_ids()
    assert space_patch_lengths(ids)[0].tolist() == SPACE
    assert space_patch_lengths(ids, include_next_token=True)[0].tolist() == SPACE + [1]  # EOS counts
    assert format_patches(ids[0], space_patch_lengths(ids)[0])[1:4] == ["Daenerys ", "Targaryen ", "is "]
    assert format_patches(ids[0], space_patch_lengths(ids)[0])[-4:] == ["R.", "R.", " Martin.", "<eos>"]


def test_static():
    ids = sentence_ids()
    assert static_patch_lengths(ids, 4)[0].tolist() == [1] + [4] * 20
    assert static_patch_lengths(ids, 4, include_next_token=True)[0].tolist() == [1] + [4] * 20 + [1]
    # official layout: ceil(S'/p) patches of p, remainder last
    for S, p, inc in [(81, 4, False), (81, 4, True), (10, 3, False), (1, 5, True)]:
        L = static_patch_lengths(torch.zeros(2, S, dtype=torch.long), p, inc, bos_patch=False)
        n = S + inc
        assert L.shape == (2, math.ceil(n / p)) and L[0, -1].item() == (n % p or p) and L.sum(1).eq(n).all()
    with pytest.raises(ValueError, match="integer patch_size"):
        static_patch_lengths(ids, 4.5)   # the official default patch_size breaks static mode: a clear error here


# ------------------------------------------------------------------ vectorised == loop, properties
@pytest.mark.parametrize("seed", range(4))
def test_vectorised_equals_loop(seed):
    g = torch.Generator().manual_seed(seed)
    for S in [1, 2, 3, 7, 64, 513]:
        E = torch.rand(5, S, generator=g) * 3
        th = float(torch.rand(1, generator=g) * 3)
        for inc in (False, True):
            got = entropy_patch_lengths(E, th, include_next_token=inc)
            assert torch.equal(got, pad_lengths([global_patch_lengths_loop(r, th, inc) for r in E.tolist()]))


def rules():
    "(name, batch fn(E, T, inc), IncrementalPatcher kwargs or None if not causal)"
    return [
        ("global", lambda E, T, i: entropy_patch_lengths(E, 1.0, include_next_token=i), dict(mode="entropy", threshold=1.0)),
        ("monotonic", lambda E, T, i: entropy_patch_lengths(E, 0.4, monotonic=True, include_next_token=i),
         dict(mode="entropy", threshold=0.4, monotonic=True)),
        ("monotonic-noquirk", lambda E, T, i: entropy_patch_lengths(E, 0.4, monotonic=True, include_next_token=i,
                                                                    official_quirks=False),
         dict(mode="entropy", threshold=0.4, monotonic=True, official_quirks=False)),
        ("global+monotonic", lambda E, T, i: entropy_patch_lengths(E, 1.0, threshold_add=0.1, include_next_token=i),
         dict(mode="entropy", threshold=1.0, threshold_add=0.1)),
        ("global+monotonic-noquirk", lambda E, T, i: entropy_patch_lengths(E, 1.0, threshold_add=0.1, include_next_token=i,
                                                                           official_quirks=False),
         dict(mode="entropy", threshold=1.0, threshold_add=0.1, official_quirks=False)),
        ("space", lambda E, T, i: space_patch_lengths(T, i), dict(mode="space")),
        ("static", lambda E, T, i: static_patch_lengths(T, 3, i), dict(mode="static", patch_size=3)),
        ("static-official", lambda E, T, i: static_patch_lengths(T, 3, i, bos_patch=False),
         dict(mode="static", patch_size=3, bos_patch=False)),
        ("budget", lambda E, T, i: entropy_patch_lengths(E, None, patch_size=3, include_next_token=i), None),
        ("budget-float", lambda E, T, i: entropy_patch_lengths(E, None, patch_size=4.5, include_next_token=i), None),
    ]


def random_batch(seed, B=5, S=48):
    g = torch.Generator().manual_seed(seed)
    E = torch.rand(B, S, generator=g) * 3
    T = torch.randint(0, 260, (B, S), generator=g)
    T[:, :S // 2] = torch.randint(4 + 32, 4 + 123, (B, S // 2), generator=g)  # half ASCII: many space-like runs
    T[:, 0] = 1
    return E, T


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name,batch,online", rules(), ids=[r[0] for r in rules()])
def test_properties(seed, name, batch, online):
    E, T = random_batch(seed)
    B, S = E.shape
    for inc in (False, True):
        L = batch(E, T, inc)
        assert L.dtype == torch.long and (L >= 0).all()
        assert L.sum(1).eq(S + inc).all()                       # cover S (or S+1) bytes
        check_lengths(L)                                        # no non-zero after a zero
        assert (L > 0).sum(1).max() == L.shape[1]               # no all-zero trailing column
        if name != "static-official": assert (L[:, 0] == 1).all()   # BOS alone
        for m in (1, 2, 5):
            Lm = split_long_patches(L, m)
            assert (Lm <= m).all() and Lm.sum(1).eq(S + inc).all()
            check_lengths(Lm)
        if online is None: continue
        full = start_mask_from_lengths(L)
        for k in range(1, S + 1):                               # prefix stability (causality)
            assert torch.equal(start_mask_from_lengths(batch(E[:, :k], T[:, :k], inc)), full[:, :k + inc]), (name, k)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name,batch,online", [r for r in rules() if r[2] is not None], ids=[r[0] for r in rules() if r[2]])
def test_incremental_equals_batch(seed, name, batch, online):
    E, T = random_batch(seed + 10, B=4, S=37)
    for inc in (False, True):
        ref = batch(E, T, inc)
        for m in (None, 1, 3):
            ps = [IncrementalPatcher(**online, max_patch_length=m) for _ in range(E.shape[0])]
            for b, p in enumerate(ps):
                decisions = p.extend(T[b].tolist(), E[b].tolist())
                starts = start_mask_from_lengths(ref if m is None else split_long_patches(ref, m))[b]
                if inc: assert decisions == starts[1:].tolist()     # each decision = does the next byte start
            assert torch.equal(pad_lengths([p.lengths(inc) for p in ps]), ref if m is None else split_long_patches(ref, m))


def test_moved_names_still_import_from_patching():
    from blt_repro import patching
    from blt_repro.patching import IncrementalPatcher as IP, pad_lengths as pl, global_patch_lengths_loop as loop
    assert (IP, pl, loop) == (IncrementalPatcher, pad_lengths, global_patch_lengths_loop)
    with pytest.raises(AttributeError, match="no attribute"):
        patching.no_such_name


def test_incremental_boundaries_never_move():
    g = torch.Generator().manual_seed(3)
    E = (torch.rand(200, generator=g) * 3).tolist()
    ip, seen = IncrementalPatcher("entropy", 1.2, threshold_add=0.0), []
    for h in E:
        ip.append(entropy=h)
        L = ip.lengths()
        assert L[:len(seen) - 1] == seen[:-1] if seen else True      # closed patches stay as they were
        seen = L


def test_budget_is_not_causal():
    E = torch.tensor([[0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    assert not torch.equal(entropy_start_mask(E[:, :4], None, patch_size=2), entropy_start_mask(E, None, patch_size=2)[:, :4])
    with pytest.raises(ValueError, match="not causal"):
        IncrementalPatcher("entropy", None)


def test_quirks_switch():
    E = torch.tensor([[0.0, 0.2, 3.0, 0.0, 0.0]])
    assert entropy_start_mask(E, 1.0, monotonic=True)[0, :4].tolist() == [True, True, True, True]
    assert entropy_start_mask(E, 1.0, monotonic=True, official_quirks=False)[0, :4].tolist() == [True, True, False, True]
    assert entropy_start_mask(E, 1.0, threshold_add=0.0)[0, :4].tolist() == [True, True, True, False]
    assert entropy_start_mask(E, 1.0, threshold_add=0.0, official_quirks=False)[0, :4].tolist() == [True, True, False, True]


def test_budget_details():
    # k = S // p - 2 patches besides bytes 0, 1; ties go to the earlier byte; short rows: only bytes 0, 1
    E = torch.zeros(1, 12)
    assert entropy_patch_lengths(E, None, patch_size=3)[0].tolist() == [1, 1, 1, 9]
    assert entropy_patch_lengths(E[:, :3], None, patch_size=4)[0].tolist() == [1, 2]
    # the top-k is taken over all S-1 entries; a start at the (uncovered) next byte just disappears
    E = torch.zeros(1, 12)
    E[0, -1] = 9.0                                              # k = 12 // 4 - 2 = 1: the next byte wins
    assert entropy_patch_lengths(E, None, patch_size=4)[0].tolist() == [1, 11]
    assert entropy_patch_lengths(E, None, patch_size=4, include_next_token=True)[0].tolist() == [1, 11, 1]


def test_space_like_matches_scalar_rule():
    from blt_repro.incremental import _byte_space_like
    ids = torch.arange(260)
    assert space_like(ids).tolist() == [_byte_space_like(i) for i in range(260)]
    alnum = set(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") | set(range(0x80, 0xC0))
    assert [not x for x in space_like(ids[4:]).tolist()] == [b in alnum for b in range(256)]


def test_lengths_mask_round_trip():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(7, 50, generator=g) < 0.3
    m[:, 0] = True
    assert torch.equal(start_mask_from_lengths(lengths_from_start_mask(m)), m)


def test_patch_ids_properties():
    E, _ = random_batch(5)
    S = E.shape[1]
    L = entropy_patch_lengths(E, 1.0, include_next_token=True)
    pid, dec = patch_ids_from_lengths(L, S), decoder_patch_ids_from_lengths(L, S)
    # every patch id appears as often as its patch is long, except that the last patch lacks the (unseen) next byte
    for b in range(E.shape[0]):
        want = L[b].clone()
        want[int((want > 0).sum()) - 1] -= 1
        assert torch.equal(torch.bincount(pid[b], minlength=L.shape[1]), want)
    nxt = torch.cat([pid[:, 1:], pid[:, -1:] + (start_mask_from_lengths(L)[:, S:S + 1]).long()], 1)
    assert torch.equal(dec, nxt - 1)                            # decoder id = patch_of(i+1) - 1


def test_calibrate_threshold():
    g = torch.Generator().manual_seed(0)
    E = torch.rand(8, 2048, generator=g) * 3
    for kw in [{}, dict(monotonic=True), dict(threshold_add=0.0), dict(include_next_token=True)]:
        for target in (2.0, 4.5, 8.0):
            th, got = calibrate_threshold(E, target, return_achieved=True, **kw)
            assert abs(got - target) / target < 0.01, (kw, target, got)
            assert abs(mean_patch_size(entropy_patch_lengths(E, th, **kw)) - got) < 1e-9
            assert calibrate_threshold(E, target, **kw) == th
    sizes = [mean_patch_size(entropy_patch_lengths(E, t)) for t in torch.linspace(-1, 4, 40).tolist()]
    assert sizes == sorted(sizes)
    with pytest.raises(ValueError, match="out of reach"):
        calibrate_threshold(E, 0.5)
    with pytest.raises(ValueError, match="rule keywords"):
        calibrate_threshold(E, 4.0, threshold=1.0)


# ------------------------------------------------------------------ bad input
def test_bad_input():
    E = torch.rand(2, 10)
    cases = [
        (lambda: entropy_patch_lengths(E[0]), ValueError, "shape"),
        (lambda: entropy_patch_lengths(E.long()), TypeError, "floating-point"),
        (lambda: entropy_patch_lengths([[1.0]]), TypeError, "torch.Tensor"),
        (lambda: entropy_patch_lengths(torch.rand(0, 5)), ValueError, "at least one row"),
        (lambda: entropy_patch_lengths(E, float("nan")), ValueError, "threshold is NaN"),
        (lambda: entropy_patch_lengths(E, 1.0, threshold_add=float("nan")), ValueError, "threshold_add is NaN"),
        (lambda: entropy_patch_lengths(torch.tensor([[0.1, float("nan")]])), ValueError, "NaN"),
        (lambda: entropy_patch_lengths(E, 1.0, monotonic=True, threshold_add=0.0), ValueError, "choose one rule"),
        (lambda: entropy_patch_lengths(E, None), ValueError, "needs patch_size"),
        (lambda: entropy_patch_lengths(E, None, patch_size=0), ValueError, "patch_size must be"),
        (lambda: entropy_patch_lengths(E, None, patch_size=4, monotonic=True), ValueError, "budget"),
        (lambda: entropy_patch_lengths(E, 1.0, patch_size=4), ValueError, "not both"),
        (lambda: space_patch_lengths(torch.rand(2, 3)), TypeError, "integer"),
        (lambda: static_patch_lengths(torch.ones(1, 3, dtype=torch.long), 0), ValueError, "integer patch_size"),
        (lambda: split_long_patches(torch.tensor([[1, 3]]), 0), ValueError, "max_patch_length"),
        (lambda: split_long_patches(torch.tensor([[1, -3]]), 2), ValueError, ">= 0"),
        (lambda: split_long_patches(torch.tensor([[1, 0, 3]]), 2), ValueError, "follows a zero"),
        (lambda: patch_ids_from_lengths(torch.tensor([[1, 3]]), 5), ValueError, "fewer than seq_len"),
        (lambda: patch_ids_from_lengths(torch.tensor([[1.0, 3.0]]), 4), TypeError, "integer"),
        (lambda: decoder_patch_ids_from_lengths(torch.tensor([[2, 3]]), 4), ValueError, "length 1"),
        (lambda: decoder_patch_ids_from_lengths(torch.tensor([[1, 3]]), 4), ValueError, "include_next_token=True"),
        (lambda: lengths_from_start_mask(torch.tensor([[False, True]])), ValueError, "first byte"),
        (lambda: format_patches("abc", [1, 5]), ValueError, "cover"),
        (lambda: format_patches([1, 300], [2]), ValueError, "0..259"),
        (lambda: IncrementalPatcher("bpe"), ValueError, "mode must be"),
        (lambda: IncrementalPatcher("entropy", monotonic=True, threshold_add=0.1), ValueError, "not both"),
        (lambda: IncrementalPatcher("space").append(entropy=1.0), ValueError, "token id"),
        (lambda: IncrementalPatcher("entropy").append(5, float("nan")), ValueError, "NaN"),
        (lambda: IncrementalPatcher("static", patch_size=None), ValueError, "integer patch_size"),
        (lambda: IncrementalPatcher("space", max_patch_length=0), ValueError, "max_patch_length"),
        (lambda: IncrementalPatcher("entropy").extend([5, 6], [1.0]), ValueError, "one entropy per byte"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            fn()


def test_format_patches():
    assert format_patches("héllo", [1, 1, 4]) == ["h", "\\xc3", "\\xa9llo"]
    assert format_patches(b"ab", torch.tensor([[1, 1, 0]])) == ["a", "b"]
    assert format_patches([1, 76, 2], [1, 3]) == ["<bos>", "H<eos>"]          # the next byte is not shown
    assert "".join(format_patches(SENTENCE, [1] * len(SENTENCE))) == SENTENCE


def test_plot_patches_smoke():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from blt_repro.plots import plot_patches
    ids = sentence_ids()
    E = torch.rand(1, ids.shape[1])
    fig, ax = plt.subplots()
    plot_patches(ax, ids[0], entropy_patch_lengths(E, 0.5, include_next_token=True)[0], E[0], 0.5)
    plot_patches(ax, SENTENCE, [1] * len(SENTENCE))
    plt.close(fig)


def test_bench_small():
    from blt_repro.bench import bench_patching
    res = bench_patching(n_bytes=4096, row_len=1024, repeats=1)
    assert res["agree"] and res["rows"] == 4 and res["n_bytes"] == 4096 and res["vectorised_mib_s"] > 0


def test_moved_names_still_import():
    "Names that moved to `plots`, `bench` and from `baselines` are still importable from their old modules."
    from blt_repro import baselines, bench, patching, plots
    assert patching.format_patches is plots.format_patches and patching.plot_patches is plots.plot_patches
    assert patching.bench_patching is bench.bench_patching
    assert baselines.PatcherConfig is patching.PatcherConfig and baselines.patch_lengths is patching.patch_lengths
    with pytest.raises(AttributeError): patching.no_such_name


# ------------------------------------------------------------------ parity with transformers' BLT port
@pytest.fixture(scope="module")
def hf():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blt = pytest.importorskip("transformers.models.blt.modeling_blt")
    return blt


@pytest.mark.parametrize("seed", range(3))
def test_hf_entropy_lengths(hf, seed):
    """HF ends every row at byte S-1 but takes starts up to the next byte: it equals our include_next_token=True
    lengths minus one in the last column. For rows with fewer patches than the longest, that gives a -1 length."""
    g = torch.Generator().manual_seed(seed)
    saw_negative = False
    for B, S in [(1, 5), (1, 64), (3, 40), (8, 300)]:
        E = torch.rand(B, S, generator=g) * 3
        th = float(0.5 + torch.rand(1, generator=g) * 2)
        theirs = hf.BltPatcher.patch_lengths_from_entropies(E, S, threshold=th)
        ours = entropy_patch_lengths(E, th, include_next_token=True)
        ours[:, -1] -= 1
        assert torch.equal(theirs, ours)
        saw_negative |= bool((theirs < 0).any())
        if B == 1:   # one row: our include_next_token=False, plus a trailing 0 when the last entropy is above θ
            plain = entropy_patch_lengths(E, th)[0].tolist()
            assert theirs[0].tolist() in (plain, plain + [0])
    assert saw_negative


@pytest.mark.parametrize("seed", range(3))
def test_hf_split_and_patch_ids(hf, seed):
    g = torch.Generator().manual_seed(seed)
    for B, S in [(1, 7), (4, 60), (6, 257)]:
        E = torch.rand(B, S, generator=g) * 3
        L = entropy_patch_lengths(E, 2.0, include_next_token=True)   # long patches, ragged rows
        for m in (1, 2, 5, 100):
            assert torch.equal(hf.process_patch_lengths(L, m), split_long_patches(L, m))
        assert torch.equal(hf.BltModel._patch_ids_from_lengths(None, L, S), patch_ids_from_lengths(L, S))
        assert torch.equal(hf.BltModel._patch_ids_from_lengths(None, L[:, 1:], S), decoder_patch_ids_from_lengths(L, S))
        Ls = space_patch_lengths(torch.randint(0, 260, (B, S), generator=g), include_next_token=True)
        assert torch.equal(hf.process_patch_lengths(Ls, 3), split_long_patches(Ls, 3))
        assert torch.equal(hf.BltModel._patch_ids_from_lengths(None, Ls, S), patch_ids_from_lengths(Ls, S))
