"""Curve tracing on small hand-built probability maps."""

from __future__ import annotations

import numpy as np
import pytest

from veernet_ray.trace import trace_curves


def render(rows_per_class, h, w, sigma=0.0, noise=0.0, seed=0):
    """(C, H, W) probabilities with each class's curve at the given (sub-pixel) rows; NaN row = absent."""
    rng = np.random.default_rng(seed)
    r = np.arange(h)[:, None]
    probs = np.zeros((len(rows_per_class) + 1, h, w))
    for c, rows in enumerate(rows_per_class, start=1):
        rows = np.asarray(rows, float)
        if sigma > 0:
            g = np.exp(-0.5 * ((r - rows[None, :]) / sigma) ** 2)
            g = np.nan_to_num(g / np.sqrt(2 * np.pi) / sigma)
        else:  # split one unit of probability between the two nearest rows
            lo = np.floor(rows)
            frac = rows - lo
            g = np.where(r == lo[None, :], 1 - frac[None, :], 0.0) + np.where(r == lo[None, :] + 1, frac[None, :], 0.0)
            g = np.nan_to_num(g)
        probs[c] = np.maximum(probs[c], g)
    if noise:
        probs[1:] += rng.uniform(0, noise, probs[1:].shape)
    probs[1:] = np.clip(probs[1:], 0, 1)
    total = probs[1:].sum(axis=0)
    scale = np.maximum(total, 1.0)
    probs[1:] /= scale
    probs[0] = 1 - probs[1:].sum(axis=0)
    return probs


H, W = 96, 400
COLS = np.arange(W)


def test_straight_line_sub_pixel():
    truth = np.full(W, 40.3)
    res = trace_curves(render([truth, np.full(W, np.nan)], H, W), (1, 2))
    assert np.nanmax(np.abs(res.rows[0] - truth)) < 0.05
    assert np.isnan(res.rows[1]).all()  # empty class -> all NaN
    assert res.confidence[0].min() > 0.9


def test_sinusoid_blurred_with_noise():
    truth = 48 + 30 * np.sin(COLS / 40)
    res = trace_curves(render([truth], H, W, sigma=1.0, noise=0.05), (1,))
    assert np.isfinite(res.rows[0]).all()
    assert np.mean(np.abs(res.rows[0] - truth)) < 0.3


def test_grid_line_does_not_capture():
    truth = 50 + 20 * np.sin(COLS / 30)
    probs = render([truth], H, W)
    probs[1, 30, :] = np.maximum(probs[1, 30, :], 0.45)  # full-width grid line of moderate probability
    probs[0] = 1 - probs[1]
    res = trace_curves(probs, (1,))
    assert np.nanmax(np.abs(res.rows[0] - truth)) < 1.0
    assert np.isfinite(res.rows[0]).mean() > 0.97


def test_crossing_curves_keep_identity():
    t1 = 20 + 0.15 * COLS  # rising
    t2 = 80 - 0.15 * COLS  # falling; they cross near column 200
    probs = render([t1, t2], H, W)
    # curve 2 drawn on top: curve 1 loses its pixels where they overlap
    on_top = np.abs(t1 - t2) < 2
    probs[1][:, on_top] = 0.0
    probs[0] = 1 - probs[1:].sum(axis=0)
    res = trace_curves(probs, (1, 2))
    for k, t in enumerate((t1, t2)):
        ok = np.isfinite(res.rows[k])
        assert ok.mean() > 0.95
        assert np.max(np.abs(res.rows[k][ok] - t[ok])) < 1.0


def test_short_gap_bridged_long_gap_nan():
    truth = 50 + 10 * np.sin(COLS / 50)
    rows = truth.copy()
    rows[100:104] = np.nan  # short gap: bridged
    rows[200:300] = np.nan  # long gap: absent
    res = trace_curves(render([rows], H, W), (1,), min_confidence=0.3)
    assert np.isfinite(res.rows[0, 100:104]).all()
    assert res.bridged[0, 100:104].all()
    assert np.abs(res.rows[0, 100:104] - truth[100:104]).max() < 0.5
    assert (res.confidence[0, 100:104] < res.confidence[0, 90:99].min()).all()
    assert np.isnan(res.rows[0, 202:298]).all()
    assert np.isfinite(res.rows[0, 300:]).all()


def test_a_path_comes_back_near_where_it_left_not_on_other_ink_across_the_track():
    """A broken curve (30 columns on, 70 off) with other ink far across the track in its gaps:
    with the gap slack the trace stays on its dots (absent between them); without it (inf, the rule
    before) coming back anywhere costs only a switch, and the path hops onto the other ink."""
    import math

    h, w = 400, 400
    dots = np.full(w, np.nan)
    other = np.full(w, np.nan)
    for x in range(0, w, 100):
        dots[x : x + 30] = 350.0
        other[x + 40 : x + 70] = 50.0
    p = render([dots, other], h, w)
    probs = np.stack([1.0 - (p[1] + p[2]), p[1] + p[2]])
    near = trace_curves(probs, (1,), gap_slack=0.5).rows[0]
    anywhere = trace_curves(probs, (1,), gap_slack=math.inf).rows[0]
    on_other = np.isfinite(other)
    assert np.nanmax(np.abs(near[np.isfinite(dots)] - 350.0)) < 1.0
    assert not (np.abs(near[on_other] - 50.0) < 5).any()  # never on the other ink
    assert (np.abs(anywhere[on_other] - 50.0) < 5).mean() > 0.5  # the old rule hops there
    with pytest.raises(ValueError, match="gap_slack"):
        trace_curves(probs, (1,), gap_slack=-1.0)


def backup_curve():
    """A curve drifting up past the top edge: drawn rows wrap with period P."""
    period = H - 1.0
    unwrapped = 60 - 0.25 * COLS  # reaches row 0 at column 240, continues to -40
    drawn = np.mod(unwrapped, period)
    return unwrapped, drawn, period


def test_wrap_declared_gives_unwrapped_continuous_rows():
    unwrapped, drawn, period = backup_curve()
    res = trace_curves(render([drawn], H, W), (1,), wrap_px={1: period})
    ok = np.isfinite(res.rows[0])
    assert ok.mean() > 0.97
    assert np.max(np.abs(res.rows[0][ok] - unwrapped[ok])) < 1.0


def test_wrap_counts_cycles_from_the_scale_not_from_the_first_column():
    """A scan that starts inside an excursion: the curve is beyond the top edge (drawn wrapped)
    for its first 100 columns, then on scale. Most of the depth is on scale, so that stretch is
    cycle 0 and the excursion reads beyond the page, whatever the first column showed; the
    pixel rows (`page`) are where the ink is."""
    period = H - 1.0
    unwrapped = -25 + 0.25 * COLS  # row 0 at column 100, then on scale down to row 74
    drawn = np.mod(unwrapped, period)
    res = trace_curves(render([drawn], H, W), (1,), wrap_px={1: period})
    ok = np.isfinite(res.rows[0])
    assert ok.mean() > 0.97
    assert np.max(np.abs(res.rows[0][ok] - unwrapped[ok])) < 1.0
    assert np.max(np.abs(res.page[0][ok] - drawn[ok])) < 1.0


def test_wrap_counts_a_crossing_made_in_a_gap():
    """A dashed backup curve that leaves the top edge between two dashes (a gap longer than the
    tracer bridges): the crossing is still counted, measured from the last dash, so the trace
    beyond it reads past the page (unwrapped), not back on scale."""
    unwrapped, drawn, period = backup_curve()  # reaches row 0 at column 240
    dashed = np.where((COLS + 5) % 50 < 30, drawn, np.nan)  # dashes at 195-224 and 245-274: 240 in a gap
    res = trace_curves(render([dashed], H, W), (1,), wrap_px={1: period})
    ok = np.isfinite(res.rows[0]) & np.isfinite(dashed)
    assert ok[260:].sum() > 30
    assert np.max(np.abs(res.rows[0][ok] - unwrapped[ok])) < 1.0


def test_wrap_not_declared_cuts_at_jump():
    unwrapped, drawn, _ = backup_curve()
    res = trace_curves(render([drawn], H, W), (1,))
    rows = res.rows[0]
    jump = int(np.argmax(np.abs(np.diff(drawn)))) + 1
    assert np.isnan(rows[jump - 1 : jump + 1]).any()
    ok = np.isfinite(rows)
    assert np.max(np.abs(rows[ok] - drawn[ok])) < 1.0
    assert np.nanmax(np.abs(np.diff(rows))) < 2.0  # never connected across the edge


def test_more_peaks_than_candidates():
    """More local maxima per column than the DP keeps as states: the curve still wins."""
    truth = 50 + 20 * np.sin(COLS / 30)
    probs = render([truth], H, W, noise=0.1)
    for row in range(4, H, 7):  # 14 full-width grid lines at p = 0.45, plus noise peaks
        probs[1, row, :] = np.maximum(probs[1, row, :], 0.45)
    probs[0] = 1 - probs[1]
    res = trace_curves(probs, (1,))
    ok = np.isfinite(res.rows[0])
    assert ok.mean() > 0.97
    assert np.max(np.abs(res.rows[0][ok] - truth[ok])) < 1.0


def test_one_column_gap_without_ink_bridged():
    truth = 30 + 0.1 * COLS
    rows = truth.copy()
    rows[[50, 120, 121]] = np.nan  # no ink at all there (every row is equally bad)
    res = trace_curves(render([rows], H, W), (1,))
    assert np.isfinite(res.rows[0]).all()
    assert res.bridged[0, [50, 120, 121]].all() and res.bridged[0].sum() == 3
    assert np.abs(res.rows[0] - truth).max() < 0.05


def test_tiny_image_every_row_is_a_state():
    truth = np.full(40, 2.0)
    res = trace_curves(render([truth], 5, 40), (1,))
    assert np.abs(res.rows[0] - truth).max() < 0.05


def _path_cost(path, cand, emit, e_abs, period, pen, switch):
    n = cand.shape[1]
    total = 0.0
    for t, st in enumerate(path):
        total += e_abs if st == n else emit[t, st]
        if t == 0:
            continue
        prev = path[t - 1]
        if (prev == n) != (st == n):
            total += switch
        elif st < n:
            d = cand[t, st] - cand[t - 1, prev]
            total += pen * (min(abs(d), abs(d + period), abs(d - period)) if np.isfinite(period) else abs(d))
    return total


@pytest.mark.parametrize("seed", range(4))
def test_candidate_viterbi_matches_brute_force(seed):
    """The DP's path costs the minimum over all state sequences (with and without a wrap)."""
    import itertools

    from veernet_ray.trace.tracer import _viterbi

    rng = np.random.default_rng(seed)
    w, n = 6, 2
    cand = rng.integers(0, 10, (2, w, n))
    emit = rng.uniform(0, 3, (2, w, n))
    periods = np.array([np.nan, 9.5])
    pen, switch, e_abs = 0.4, 1.0, 0.9
    state, shift = _viterbi(cand, emit, e_abs, periods, pen, switch)
    for ci in range(2):
        args = (cand[ci], emit[ci], e_abs, periods[ci], pen, switch)
        best = min(_path_cost(p, *args) for p in itertools.product(range(n + 1), repeat=w))
        assert _path_cost(state[ci], *args) == pytest.approx(best)
        for t in range(1, w):  # the recorded crossing is the one the jump cost used
            if state[ci, t] < n and state[ci, t - 1] < n:
                d = cand[ci, t, state[ci, t]] - cand[ci, t - 1, state[ci, t - 1]]
                options = {0: abs(d), 1: abs(d + 9.5), -1: abs(d - 9.5)} if ci == 1 else {0: abs(d)}
                assert options[int(shift[ci, t])] == min(options.values())
            else:
                assert shift[ci, t] == 0


def _block_peaks_numpy(x, block, nb, rbits):
    """The candidate search's block keys as whole-array NumPy: the reference for the compiled pass."""
    h, w = x.shape
    mass = x.copy()
    if h > 1:
        mass[1:] = x[:-1] + x[1:]
        mass[0] = x[0] + x[1]
        mass[1:-1] += x[2:]
    ge = np.ones((h, w), bool)
    gt = np.ones((h, w), bool)
    ge[1:] = mass[1:] >= mass[:-1]
    gt[:-1] = mass[:-1] > mass[1:]
    score = np.zeros((nb * block, w), np.float32)
    score[:h] = mass * (ge & gt)
    keys = score.view(np.int32) & np.int32(~((1 << rbits) - 1))
    keys |= (np.arange(nb * block, dtype=np.int32) % block)[:, None]
    return keys.reshape(nb, block, w).max(axis=1), mass


@pytest.mark.parametrize("h, w", [(1, 7), (2, 9), (5, 40), (37, 50), (100, 33), (131, 64)])
def test_candidate_search_matches_whole_array_numpy(h, w):
    """The compiled one-pass block search equals the whole-array formulation, plateaus and padding included,
    and the mass returned with each candidate row is that row's 3-row mass."""
    from veernet_ray.trace.tracer import CAND_BLOCK, N_CANDIDATES, _block_peaks, _candidates

    rng = np.random.default_rng(h * 1000 + w)
    x = (np.round(rng.uniform(0, 1, (h, w)) * 8) / 8).astype(np.float32)  # coarse levels: many ties
    x[:, : w // 4] = 0.0  # ink-free columns
    block = max(1, min(CAND_BLOCK, h // (2 * N_CANDIDATES)))
    nb = -(-h // block)
    rbits = (block - 1).bit_length()
    want, mass = _block_peaks_numpy(x, block, nb, rbits)
    assert np.array_equal(_block_peaks(x, np.float32(1.0), block, nb, rbits), want)
    rows, m = _candidates(x, N_CANDIDATES)
    assert rows.shape == (w, min(N_CANDIDATES, nb)) and rows.min() >= 0 and rows.max() < h
    assert np.array_equal(m, mass[rows, np.arange(w)[:, None]])
    q = np.round(x * 255).astype(np.uint8)  # quantised probabilities read as they are: float32(q) / 255
    rows_q, m_q = _candidates(q, N_CANDIDATES)
    rows_f, m_f = _candidates(np.divide(q, np.float32(255), dtype=np.float32), N_CANDIDATES)
    assert np.array_equal(rows_q, rows_f) and np.array_equal(m_q, m_f)


def test_uint8_probabilities_trace_as_their_float32_division():
    """The model stage's quantised uint8 probabilities give the traces and QC of float32(q) / 255,
    shared-ink retrace included (two traces forced onto one line)."""
    from veernet_ray.trace.qc import curve_signals

    one, two = 30 + 10 * np.sin(COLS / 25), 70 + 8 * np.cos(COLS / 40)
    probs = render([one, two], H, W, sigma=1.0, noise=0.05, seed=4)
    span = slice(100, 300)  # curve 2's class also on curve 1's ink, its own ink faint: traced, erased, retraced
    probs[2][:, span] = np.maximum(probs[1][:, span], 0.8 * probs[2][:, span])
    probs[0] = 1 - probs[1:].sum(axis=0)
    q = np.round(np.clip(probs, 0, 1) * 255).astype(np.uint8)
    f = np.divide(q, np.float32(255), dtype=np.float32)
    a, b = trace_curves(q, (1, 2)), trace_curves(f, (1, 2))
    for x, y in ((a.rows, b.rows), (a.confidence, b.confidence), (a.bridged, b.bridged)):
        assert np.array_equal(x, y, equal_nan=True)
    ok = np.isfinite(a.rows[1])
    assert ok.mean() > 0.9 and np.abs(a.rows[1][ok] - two[ok]).max() < 2  # the retrace found curve 2's own ink
    image = np.full((H, W), 230, np.uint8)
    image[np.round(one).astype(int), COLS] = 20
    assert curve_signals(a.rows, a.confidence, (1, 2), q, image) == curve_signals(b.rows, b.confidence, (1, 2), f, image)


def test_ink_map_reads_equal_the_whole_image_versions():
    """QC's sparse ink reads (`InkMap`) equal the dense darkness map and its row medians; the
    normaliser is NumPy's 99.9th percentile; the paper level is NumPy's 90th, bit for bit."""
    from veernet_ray.trace.ink import ROW_WINDOW, InkMap, column_percentile, darkness, row_median

    rng = np.random.default_rng(3)
    for h, w in [(1, 1), (7, 100), (60, ROW_WINDOW), (60, 3 * ROW_WINDOW + 17), (300, 700)]:
        scan = np.clip(rng.normal(215, 12, (h, w)), 0, 255).astype(np.uint8)
        scan[rng.integers(0, h, 3 * w), rng.integers(0, w, 3 * w)] = rng.integers(0, 120, 3 * w)  # ink
        scan[h // 2] = 150  # a grid line
        ink, inkmap = darkness(scan), InkMap(scan)
        rows, cols = rng.integers(0, h, 300), rng.integers(0, w, 300)
        assert np.array_equal(inkmap.at(rows, cols), ink[rows, cols])
        assert np.array_equal(inkmap.row_median_at(rows, cols), row_median(ink)[rows, cols])
        paper = np.percentile(scan[:: max(1, h // 128)].astype(np.float32), 90, axis=0)
        raw = np.clip((paper - scan.astype(np.float32)) / np.maximum(paper, 1.0), 0.0, 1.0)
        assert float(inkmap.norm) == pytest.approx(max(float(np.percentile(raw, 99.9)), 1e-3), rel=1e-6)
    for h, w in [(1, 5), (3, 2), (129, 40), (600, 300)]:  # the paper level: uint8 scans, sampled rows
        scan = np.clip(rng.normal(200, 40, (h, w)), 0, 255).astype(np.uint8)
        for sample in (scan, scan[:: max(1, h // 128)]):
            want = np.percentile(sample.astype(np.float32), 90, axis=0)
            assert np.array_equal(column_percentile(sample, 90), want) and want.dtype == np.float32
    # ink only on the pixels the normaliser's sample reads (every 10th of 704,000): the sample's bound
    # lets fewer values through than the percentile needs, and every value is taken instead
    sparse = np.full((640, 1100), 220, np.uint8)
    flat = sparse.reshape(-1)
    flat[rng.choice(np.arange(0, flat.size, 10), 700, replace=False)] = rng.integers(0, 120, 700)
    paper = np.percentile(sparse.astype(np.float32), 90, axis=0)
    raw = np.clip((paper - sparse.astype(np.float32)) / np.maximum(paper, 1.0), 0.0, 1.0)
    assert float(InkMap(sparse).norm) == pytest.approx(max(float(np.percentile(raw, 99.9)), 1e-3), rel=1e-6)


@pytest.mark.parametrize(
    "probs, ids, match",
    [
        (np.zeros((3, 10)), (1,), "shape"),
        (np.zeros((3, 10, 10), dtype=np.int32), (1,), "dtype"),
        (np.zeros((1, 10, 10)), (1,), "at least 2"),
        (np.full((3, 10, 10), np.nan), (1,), "NaN"),
        (np.zeros((3, 10, 10)), (3,), "out of range"),
        (np.zeros((3, 10, 10)), (0,), "out of range"),
        (np.full((3, 10, 10), 2.0), (1,), r"\[0, 1\]"),
    ],
)
def test_bad_inputs(probs, ids, match):
    with pytest.raises(ValueError, match=match):
        trace_curves(probs, ids)


def test_lukewarm_map_is_not_confident():
    """An untrained model's ~uniform softmax must not read as a confident trace (QC would never flag it)."""
    probs = np.full((3, 64, 300), 1 / 3, np.float32)
    probs += np.random.default_rng(0).normal(0, 0.01, probs.shape).astype(np.float32)
    probs = np.clip(probs, 0, 1)
    res = trace_curves(probs, (1, 2))
    assert res.confidence.max() < 0.2
    assert np.isnan(res.rows).mean() > 0.9


def test_two_traces_do_not_ride_the_same_ink():
    """A confused model puts more curve-2 probability on curve 1's ink than on curve 2's own:
    curve 2 must not follow curve 1 (ink belongs to one curve); it finds its own line."""
    h, w = 64, 300
    probs = np.zeros((3, h, w), np.float32)
    probs[1, 19:22, :] = 0.6  # curve 1: a 3-px line, mostly class 1 ...
    probs[2, 19:22, :] = 0.3  # ... with 0.9 of class-2 mass across it
    probs[2, 45, :] = 0.7  # curve 2's own, thinner line: only 0.7 of class-2 mass
    probs[0] = 1.0 - probs[1] - probs[2]
    res = trace_curves(probs, (1, 2))
    assert np.nanmedian(res.rows[0]) == pytest.approx(20, abs=0.5)
    assert not (np.abs(res.rows[1] - 20) < 3).sum() > 12  # never shares curve 1's ink for long
    assert np.nanmedian(res.rows[1]) == pytest.approx(45, abs=0.5)


def test_a_crossing_is_not_treated_as_shared_ink():
    h, w = 64, 400
    cols = np.arange(w)
    r1 = 32 + 20 * np.sin(cols / 60)
    r2 = 32 - 20 * np.sin(cols / 60)  # crosses r1 at a few columns
    probs = render([r1, r2], h, w)
    res = trace_curves(probs, (1, 2))
    ok = np.isfinite(res.rows)
    assert np.nanmean(np.abs(res.rows[0] - r1)) < 1.0 and np.nanmean(np.abs(res.rows[1] - r2)) < 1.0
    assert ok.mean() > 0.9


def test_ink_identity_decoder_finds_both_curves_and_their_classes():
    """The alternative decoder (bench/decoders.py): ink traced twice, classes from the model.
    Curve 2's ink is mostly labelled class 1 (a confused model); the class evidence still picks
    the right path for each class, swapped back per stretch where the paths cross."""
    from veernet_ray.trace.decode import DECODERS, decode_ink_identity

    h, w = 64, 900
    cols = np.arange(w)
    r1 = 32 + 20 * np.sin(cols / 150)
    r2 = 32 - 20 * np.sin(cols / 150)
    probs = render([r1, r2], h, w).astype(np.float32)
    # move 60% of curve 2's class-2 mass to class 1: per-channel tracing of class 2 gets weak
    moved = 0.6 * probs[2]
    probs[1] += moved
    probs[2] -= moved
    res = decode_ink_identity(probs, (1, 2))
    assert res.class_ids == (1, 2)
    assert np.nanmedian(np.abs(res.rows[0] - r1)) < 1.0
    assert np.nanmedian(np.abs(res.rows[1] - r2)) < 1.0
    assert set(DECODERS) >= {"per-class", "ink-identity"}


def test_damped_decoder_ignores_a_border_the_model_calls_curve():
    from veernet_ray.trace.decode import damp_lines

    h, w = 64, 600
    image = np.full((h, w), 230, np.uint8)
    image[5, :] = 20  # a dark border across the scan
    rows = 40 + 5 * np.sin(np.arange(w) / 40)
    image[np.round(rows).astype(int), np.arange(w)] = 30
    probs = render([rows], h, w).astype(np.float32)
    probs[1, 5, :] = 0.95  # the model mistakes the border for curve
    probs[0] = 1 - probs[1]
    damped = damp_lines(probs, image)
    assert damped[1, 5].max() < 0.05 and np.allclose(damped.sum(axis=0), 1, atol=1e-5)
    res = trace_curves(damped, (1,))
    assert np.nanmedian(np.abs(res.rows[0] - rows)) < 1.0


def _pen(h, w, rows, half, on=None):
    """(H, W) float ink of a pen `half` rows either side of `rows`, drawn where `on` (all columns by default)."""
    r = np.arange(h)[:, None]
    ink = (np.abs(r - np.asarray(rows)[None, :]) <= half).astype(np.float32)
    if on is not None:
        ink *= on[None, :]
    return ink


def test_trace_twice_erases_a_bold_pen_whole_before_the_second_pass():
    """A 13-row pen: erasing +-4 rows about its path would leave two 4-row edges inked, and the
    second pass would ride one of them instead of the faint dashed curve 9 rows away."""
    from veernet_ray.trace.decode import ERASE_HALF, trace_twice

    h, w = 96, 800
    cols = np.arange(w)
    bold = 40 + 8 * np.sin(cols / 90)
    faint = bold + 15
    dashes = ((cols // 12) % 2 == 0).astype(np.float32)
    ink = np.maximum(_pen(h, w, bold, 6), 0.6 * _pen(h, w, faint, 1, dashes))
    assert ERASE_HALF < 6  # the case this test is about
    first, second = trace_twice(ink, None, ERASE_HALF)
    assert np.nanmax(np.abs(first.rows[0] - bold)) <= 6.5  # somewhere on the pen (its ink is flat)
    assert np.nanmedian(np.abs(second.rows[0] - faint)) < 1.5


@pytest.mark.parametrize("order", [(1, 2), (2, 1)])
def test_ink_stroke_decoder_reads_identity_from_the_pen_not_the_classes(order):
    """The model calls all ink class 1 (as on a pen pattern it never saw). The default decoder
    traces the ink twice and, the classes saying next to nothing, calls the solid path curve 1 and
    the dashed one curve 2, in the order asked; uint8 probabilities (the model stage's) and float
    ones give the same curves."""
    from veernet_ray.trace.decode import DEFAULT_DECODER, decode, decode_ink_stroke

    h, w = 96, 1200
    cols = np.arange(w)
    solid = 30 + 10 * np.sin(cols / 110)
    dashed = 66 + 12 * np.cos(cols / 70)
    dashes = ((cols // 10) % 3 != 2).astype(np.float32)  # 2 on, 1 off: broken, yet the stronger ink
    ink = np.maximum(0.6 * _pen(h, w, solid, 1), _pen(h, w, dashed, 2, dashes))
    probs = np.zeros((3, h, w), np.float32)
    probs[1] = 0.9 * ink
    probs[2] = 0.05 * ink
    probs[0] = 1 - probs[1] - probs[2]
    res = decode(probs, order)
    assert DEFAULT_DECODER == "ink-classes-jumps" and res.class_ids == order
    got = {cid: res.rows[k] for k, cid in enumerate(order)}
    assert np.nanmedian(np.abs(got[1] - solid)) < 1.0
    assert np.nanmedian(np.abs(got[2] - dashed)) < 1.0
    q = np.round(probs * 255).astype(np.uint8)
    res8 = decode(q, order)
    np.testing.assert_array_equal(res8.rows, decode(q.astype(np.float32) / 255, order).rows)
    np.testing.assert_array_equal(decode_ink_stroke(q, order).rows, decode_ink_stroke(q.astype(np.float32) / 255, order).rows)
    assert np.nanmedian(np.abs(res8.rows[order.index(1)] - solid)) < 1.0


def _crossing_probs(h, w, p1_on_1=0.7, p2_on_1=0.2):
    """Two solid curves that cross twice (curve 1 falls, curve 2 rises, then back), each pen drawn
    alike, so only the classes tell them apart: class 1 reads p1_on_1 on curve 1 and p2_on_1 of
    class 2; curve 2 the mirror."""
    cols = np.arange(w, dtype=float)
    c1 = 48 + 30 * np.cos(cols / w * 2 * np.pi)
    c2 = 48 - 30 * np.cos(cols / w * 2 * np.pi)
    a, b = _pen(h, w, c1, 1), _pen(h, w, c2, 1)
    probs = np.zeros((3, h, w), np.float32)
    probs[1] = np.maximum(p1_on_1 * a, p2_on_1 * b)
    probs[2] = np.maximum(p2_on_1 * a, p1_on_1 * b)
    probs[0] = np.clip(1 - probs[1] - probs[2], 0, 1)
    return probs, c1, c2


@pytest.mark.parametrize("order", [(1, 2), (2, 1)])
def test_default_decoder_keeps_curves_apart_across_crossings_by_their_classes(order):
    """Same pens, two crossings: each pass may turn onto the other curve where they cross (a
    Viterbi tie). The classes along each stretch between meetings hand the stretches back."""
    from veernet_ray.trace.decode import DEFAULT_DECODER, decode, decode_ink_stroke

    h, w = 96, 1200
    probs, c1, c2 = _crossing_probs(h, w)
    res = decode(probs, order)
    got = {cid: res.rows[k] for k, cid in enumerate(order)}
    far = np.abs(c1 - c2) > 12  # away from the crossings, where either curve is right
    assert DEFAULT_DECODER == "ink-classes-jumps"
    assert np.nanmax(np.abs(got[1] - c1)[far]) < 1.5
    assert np.nanmax(np.abs(got[2] - c2)[far]) < 1.5
    # the pen alone cannot tell these curves apart, nor see the crossings
    pen = decode_ink_stroke(probs, order, close=9, untangle_paths=False)
    errs = [np.nanmedian(np.abs(pen.rows[order.index(1)] - c)[far]) for c in (c1, c2)]
    assert min(errs) > 1.5  # the pen's curve 1 is partly on each curve


def test_meeting_columns_take_a_crossing_and_the_gap_the_erase_leaves_there():
    from veernet_ray.trace.decode import MEET_GAP, MEET_ROWS, meeting_columns

    w = 400
    x = np.arange(w, dtype=float)
    a = 100 + 0.5 * (x - 200)
    b = 100 - 0.5 * (x - 200)
    near = meeting_columns(np.stack([a, b]))
    assert near.tolist() == (np.abs(a - b) <= MEET_ROWS).tolist()
    holed = b.copy()
    holed[187:213] = np.nan  # the second pass loses the crossing to the first path's erased stroke
    near = meeting_columns(np.stack([a, holed]))
    assert near[187:213].all() and not near[:170].any() and not near[230:].any()
    long_gap = b.copy()
    long_gap[100:100 + MEET_GAP + 60] = np.nan  # a long absence is not a meeting
    assert not meeting_columns(np.stack([a, long_gap]))[100:180].any()


def test_jump_columns_are_where_a_path_moves_far_between_present_columns():
    from veernet_ray.trace.decode import JUMP_ROWS, jump_columns

    x = np.arange(300, dtype=float)
    a = 40 + 0.2 * x  # smooth: no jumps
    b = np.where(x < 120, 200.0, 200.0 + JUMP_ROWS + 5)  # one step at 120
    b[150:170] = np.nan
    b[170:] = b[149] + JUMP_ROWS - 1  # across a gap, a step within the limit
    assert jump_columns(np.stack([a, b])).tolist() == [120]
    c = b.copy()
    c[170:] = b[149] + JUMP_ROWS + 1  # the same gap, a step past the limit: counted at the gap's far end
    assert jump_columns(np.stack([a, c])).tolist() == [120, 170]
    assert jump_columns(np.full((2, 50), np.nan)).size == 0


def test_jumps_decoder_hands_back_a_curve_the_first_pass_left_across_a_gap():
    """Two alike pens 26 rows apart (never meeting) that trade strength at a gap in both: the first
    pass takes the stronger ink on each side, so it leaves curve 1 for curve 2 across the gap and the
    second pass does the mirror; no meeting marks the place. Stretches that end at the paths' jumps
    too let the classes hand the right half back (the decoder without them keeps the swap)."""
    from veernet_ray.trace.decode import DECODERS

    h, w = 96, 1200
    cols = np.arange(w)
    a = 36 + 3 * np.sin(cols / 80)
    b = 62 + 3 * np.cos(cols / 60)
    left, right = cols < 590, cols >= 610
    gap = ~(left | right)
    ink_a = _pen(h, w, a, 1) * (np.where(left, 1.0, 0.3) * ~gap)
    ink_b = _pen(h, w, b, 1) * (np.where(left, 0.3, 1.0) * ~gap)
    probs = np.zeros((3, h, w), np.float32)
    probs[1] = np.maximum(0.7 * ink_a, 0.2 * ink_b)
    probs[2] = np.maximum(0.2 * ink_a, 0.7 * ink_b)
    probs[0] = np.clip(1 - probs[1] - probs[2], 0, 1)
    for order in ((1, 2), (2, 1)):
        res = DECODERS["ink-classes-jumps"][0](probs, order)
        got = {cid: res.rows[k] for k, cid in enumerate(order)}
        for cid, truth in ((1, a), (2, b)):
            assert np.nanmedian(np.abs(got[cid] - truth)[left]) < 1.0
            assert np.nanmedian(np.abs(got[cid] - truth)[right]) < 1.0
    before = DECODERS["ink-classes-closed"][0](probs, (1, 2))
    assert np.nanmedian(np.abs(before.rows[0] - a)[right]) > 20  # the case this test is about


def test_trace_twice_erases_a_wrapped_path_where_its_ink_is():
    """The first path wraps: its unwrapped rows leave the page, its pixels do not. The erase must
    hit the pixels (`page`), or the second pass rides the first curve's wrapped stretch again."""
    from veernet_ray.trace.decode import ERASE_HALF, trace_twice

    period = 0.8 * H  # shorter than the track: an unwrapped row taken modulo H lands on the wrong pixel
    unwrapped = -25 + 0.25 * COLS
    drawn = np.mod(unwrapped, period)
    other = np.full(W, 40.0) + 4 * np.sin(COLS / 30)
    ink = np.maximum(_pen(H, W, drawn, 1), 0.3 * _pen(H, W, other, 1))  # the wrapped curve goes first
    first, second = trace_twice(ink, period, ERASE_HALF)

    def on(res, rows):  # share of columns traced within 2 rows of the curve
        return float(np.mean(np.abs(np.nan_to_num(res.page[0], nan=-99.0) - rows) <= 2.0))

    assert np.unique(first.offset).size == 2  # it did wrap
    assert on(first, drawn) > 0.95 and on(second, other) > 0.85


def test_untangle_swaps_paths_that_trade_curves_far_from_a_crossing():
    """Two passes may trade curves in one step where both are equally inked (seen on a training-style
    scan: one pass left a bold curve at row 392 for the other's at 87, the other did the mirror step,
    one column apart). `untangle` undoes that, and leaves a real crossing, a near pass and a spike."""
    from veernet_ray.trace.decode import untangle

    h, w = 500, 400
    x = np.arange(w, dtype=float)
    top, low = 80 + 5 * np.sin(x / 20), 390 + 5 * np.cos(x / 25)
    swapped = np.stack([np.where(x < 200, low, top), np.where(x < 200, top, low)])
    assert untangle(swapped, h).tolist() == (x >= 200).tolist()
    staggered = swapped.copy()  # the tracer cut the long step: each path absent for one column
    staggered[0, 200], staggered[1, 201] = np.nan, np.nan
    sw = untangle(staggered, h)
    assert not sw[:199].any() and sw[202:].all()
    fixed = np.where(sw[None, :], staggered[::-1], staggered)
    assert np.nanmax(np.abs(fixed[0, 202:] - low[202:])) < 1e-9
    # curves that cross, or come close and part, keep their paths; so does a one-column spike
    crossing = np.stack([100 + x, 500 - 1 - x])
    assert not untangle(crossing, h).any()
    close = np.stack([np.where(x < 200, 250.0, 240.0), np.where(x < 200, 240.0, 250.0)])
    assert not untangle(close, h).any()
    spike = np.stack([top.copy(), low.copy()])
    spike[0, 150] = 385.0
    assert untangle(spike, h).sum() <= 1


def test_ink_stroke_decoder_does_not_ride_a_border_the_model_calls_curve():
    """A track border along the scan's bottom edge, inked by the model across a 3-row band (as the
    shipped model did on training-style scans): the two passes must take the two curves, not the
    border. A curve that dips into the edge band for a short stretch keeps its ink there."""
    from veernet_ray.trace.decode import EDGE_RUN, curve_ink, decode_ink_stroke, drop_edge_lines

    h, w = 200, 1500
    cols = np.arange(w)
    solid = 60 + 20 * np.sin(cols / 120)
    dipping = 150 + 5 * np.cos(cols / 60)
    dipping[1300:1360] = 197  # into the bottom band for 60 columns, past the border's end
    dashes = ((cols // 10) % 3 != 2).astype(np.float32)
    border = (h - 2) + np.round(np.sin(cols / 50))  # wanders over rows 197-199
    ink = np.maximum.reduce([_pen(h, w, solid, 1), 0.8 * _pen(h, w, dipping, 1, dashes),
                             _pen(h, w, border, 0, (cols < 1200).astype(np.float32))])
    probs = np.zeros((3, h, w), np.float32)
    probs[1] = ink
    probs[0] = 1 - ink
    q = np.round(probs * 255).astype(np.uint8)
    kept = drop_edge_lines(curve_ink(q, (1, 2)))
    assert EDGE_RUN < 1200 and not (kept[-3:, :1200] >= 128).any()  # the border is gone...
    assert (kept[-4:, 1300:1360] >= 128).any(axis=0).mean() > 0.5  # ...the curve's dip is not
    res = decode_ink_stroke(q, (1, 2))
    assert np.nanmedian(np.abs(res.rows[0] - solid)) < 1.0
    assert np.nanmedian(np.abs(res.rows[1] - dipping)) < 1.0


def test_the_curve_without_a_backup_period_is_traced_on_the_page():
    """The ink passes are traced with the backup period (identity is not known yet), so a path may
    step across the page's edge. Curve 1 has no backup scale: it runs along the top of the track,
    with one-column breaks in its pen where specks sit at the bottom edge, a few rows away the
    short way round. Once identity is known, curve 1 is traced again on the page without the period
    (`retrace_on_page`, on the ink less the backup curve's stroke) and stays on its pen."""
    from veernet_ray.trace.decode import curve_ink, decode_ink_stroke, retrace_on_page

    h, w = 96, 1200
    cols = np.arange(w)
    solid = 3 + np.sin(cols / 110)
    breaks = (cols % 50 == 25).astype(np.float32)
    backup = 50 + 10 * np.sin(cols / 90)  # declared a backup curve; on scale here
    dashes = ((cols // 10) % 3 != 2).astype(np.float32)
    ink = np.maximum.reduce([_pen(h, w, solid, 1, 1 - breaks), 0.8 * _pen(h, w, backup, 1, dashes),
                             _pen(h, w, np.full(w, h - 2.0), 1, breaks)])
    probs = np.zeros((3, h, w), np.float32)
    probs[1] = 0.9 * ink
    probs[0] = 1 - probs[1]
    res = decode_ink_stroke(probs, (1, 2), wrap_px={2: h - 1.0})
    assert not np.any(res.offset[0])
    assert np.nanmax(res.rows[0]) < 10, "curve 1 stepped to the specks across the edge"
    assert np.nanmedian(np.abs(res.rows[0] - solid)) < 1.0
    assert np.nanmedian(np.abs(res.rows[1] - backup)) < 1.0
    np.testing.assert_array_equal(res.rows[0], retrace_on_page(curve_ink(probs, (1, 2)), res.page[1]).rows[0])


def test_a_dotted_pen_is_traced_over_its_closed_gaps():
    """A dotted backup pen (one inked column in five): on the bare ink every gap costs the tracer
    more than leaving the curve does, so the second pass comes out absent or in scraps. Traced again
    over gaps closed across 9 columns (`trace_sparse`) and put back on the dots (`snap_to_ink`), it
    covers the depth and lies on the pen; a curve the bare ink already traces whole keeps its trace."""
    from veernet_ray.trace.decode import ERASE_HALF, decode_ink_stroke, trace_ink, trace_sparse, trace_twice

    h, w = 96, 1200
    cols = np.arange(w)
    solid = 25 + 6 * np.sin(cols / 80)
    dotted = 65 + 20 * np.sin(cols / 25)  # steep: gaps closed across 9 columns smear it +-3 rows
    dots = (cols % 5 == 0).astype(np.float32)
    ink = np.maximum(_pen(h, w, solid, 1), 0.8 * _pen(h, w, dotted, 1, dots))
    _, bare = trace_twice(ink, None, ERASE_HALF)
    assert np.isfinite(bare.rows[0]).mean() < 0.6  # what this test is about
    first, second = trace_twice(ink, None, ERASE_HALF, close=9)
    assert np.isfinite(second.rows[0]).mean() > 0.95
    # on the dots and bridged between them, not on the smear of the closed map (up to 3.7 rows off)
    assert np.nanmax(np.abs(second.rows[0] - dotted)) < 1.0
    whole = _pen(h, w, solid, 1)
    np.testing.assert_array_equal(trace_sparse(whole, None, 9).rows, trace_ink(whole).rows)
    # the decoder: the solid pen is curve 1, the dotted one curve 2, traced along the whole depth
    probs = np.zeros((3, h, w), np.float32)
    probs[1] = 0.9 * ink
    probs[0] = 1 - probs[1]
    res = decode_ink_stroke(probs, (1, 2), close=9, untangle_paths=False)
    assert np.nanmedian(np.abs(res.rows[0] - solid)) < 1.0
    assert np.nanmedian(np.abs(res.rows[1] - dotted)) < 1.0 and np.isfinite(res.rows[1]).mean() > 0.95


def test_the_default_ink_passes_stay_on_a_curve_through_a_faint_stretch():
    """Curve 1 fades for 8 columns, 50 rows from a strong curve 2. The tracer's own costs (0.05 a row,
    6 to leave) make the strongest path jump to curve 2 there and back; the default decoder's
    (`INK_TRACER`) keep it on curve 1, whose identity the pen then decides."""
    from veernet_ray.trace.decode import INK_TRACER, decode, trace_ink

    h, w = 96, 600
    cols = np.arange(w)
    one, two = np.full(w, 20.0), np.full(w, 70.0)
    faint = (cols >= 300) & (cols < 308)
    dashes = ((cols // 10) % 3 != 2).astype(np.float32)
    ink = np.maximum(np.where(faint[None, :], 0.1, 1.0) * _pen(h, w, one, 1), 0.9 * _pen(h, w, two, 1, dashes))
    ink[:, faint] = np.maximum(ink[:, faint], 0.9 * _pen(h, w, two, 1)[:, faint])  # curve 2 inked there
    bare = trace_ink(ink).rows[0]
    assert np.nanmin(np.abs(bare[faint] - two[faint])) < 2, "the case this test is about: the bare tracer jumps"
    assert np.nanmax(np.abs(trace_ink(ink, **INK_TRACER).rows[0][faint] - one[faint])) < 2
    probs = np.zeros((3, h, w), np.float32)
    probs[1] = 0.9 * ink
    probs[0] = 1 - probs[1]
    res = decode(probs, (1, 2))
    assert np.nanmax(np.abs(res.rows[0] - one)) < 2 and np.nanmax(np.abs(res.rows[1] - two)) < 2


@pytest.mark.parametrize("order", [(1, 2), (2, 1)])
def test_the_second_pass_looks_for_the_class_the_first_path_is_not(order):
    """Curve 1 leaves ink beside its trace that the erase does not reach (a second, fainter class-1
    stroke 14 rows off it), and curve 2 is a sparse dotted pen the model calls class 2. On the erased
    ink the continuous leftover outweighs the dots, and the default decoder rides it as curve 2;
    `ink-classes-second` weighs the ink by the share of the class the first path is not, and finds
    the dots. uint8 and float probabilities give the same curves."""
    from veernet_ray.trace.decode import DECODERS

    decode = DECODERS["ink-classes-second"][0]

    h, w = 120, 1200
    cols = np.arange(w)
    one = 30 + 5 * np.sin(cols / 90)
    ghost = one + 14
    two = 90 + 8 * np.cos(cols / 70)
    dots = ((cols % 8) < 3).astype(np.float32)
    probs = np.zeros((3, h, w), np.float32)
    probs[1] = np.maximum(0.9 * _pen(h, w, one, 1), 0.4 * _pen(h, w, ghost, 1))
    probs[2] = 0.85 * _pen(h, w, two, 1, dots)
    probs[0] = np.clip(1 - probs[1] - probs[2], 0, 1)
    before = DECODERS["ink-classes-jumps"][0](probs, order)
    assert np.nanmedian(np.abs(before.rows[order.index(2)] - ghost)) < 1.5, "the case this test is about"
    res = decode(probs, order)
    assert np.nanmedian(np.abs(res.rows[order.index(1)] - one)) < 1.0
    assert np.nanmedian(np.abs(res.rows[order.index(2)] - two)) < 1.5
    assert np.isfinite(res.rows[order.index(2)]).mean() > 0.8
    q = np.round(probs * 255).astype(np.uint8)
    np.testing.assert_array_equal(decode(q, order).rows, decode(q.astype(np.float32) / 255, order).rows)


def test_the_second_pass_keeps_the_ink_where_the_model_sees_no_other_class():
    """The model calls every pen class 1 (a pattern it never saw): the other class's share is nowhere,
    so weighing by it would erase curve 2; the second pass then runs on the ink as it is."""
    from veernet_ray.trace.decode import other_class_ink

    h, w = 64, 300
    cols = np.arange(w)
    probs = np.zeros((3, h, w), np.float32)
    probs[1] = _pen(h, w, np.full(w, 40.0), 1)
    erased = (probs[1] * 255).astype(np.uint8)
    page = np.full(w, 10.0)
    assert np.array_equal(other_class_ink(probs, 301)(erased, page), erased)
    probs[2] = 0.05 * probs[1]  # a trace of class 2 everywhere: relative weights keep the ink's shape
    out = other_class_ink(probs, 301)(erased, page)
    assert out.max() == 255 and np.array_equal(out > 0, erased > 0) and cols.size == w
