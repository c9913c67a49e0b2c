"""Classical baselines, QC signals and `veernet evaluate` (leave-style-out)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from veernet_ray.evaluate.baselines import assign_identity, darkest_rows, viterbi_ink
from veernet_ray.trace.qc import QCThresholds, curve_signals, judge


def _scan(h: int = 64, w: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Paper with a dark horizontal grid line (row 10) and two curves: (image, true rows (2, W))."""
    img = np.full((h, w), 230, np.uint8)
    img[10, :] = 120  # grid line darker than paper, across the whole width
    img[:, ::50] = 150  # vertical grid
    x = np.arange(w)
    r1 = np.round(25 + 6 * np.sin(x / 30)).astype(int)
    r2 = np.round(48 + 4 * np.cos(x / 45)).astype(int)
    img[r1, x] = 20
    img[r2, x] = 60
    return img, np.stack([r1, r2]).astype(float)


def test_darkest_rows_finds_both_curves_under_a_grid():
    img, truth = _scan()
    rows = assign_identity(darkest_rows(img), truth)
    assert np.mean(np.abs(rows - truth) <= 1) > 0.95


def test_viterbi_ink_traces_then_erases_and_traces_again():
    img, truth = _scan()
    rows = assign_identity(viterbi_ink(img), truth)
    ok = np.isfinite(rows)
    assert ok.mean() > 0.9
    assert np.mean(np.abs(rows[ok] - truth[ok]) <= 1.5) > 0.95


def test_assign_identity_swaps_when_that_fits_better():
    t = np.array([[1.0, 2.0, 3.0], [10.0, 11.0, 12.0]])
    np.testing.assert_array_equal(assign_identity(t[::-1].copy(), t), t)
    np.testing.assert_array_equal(assign_identity(t.copy(), t), t)


def _probs(h: int, w: int, rows: np.ndarray) -> np.ndarray:
    p = np.zeros((3, h, w), np.float32)
    p[0] = 1.0
    x = np.arange(w)
    for k, r in enumerate(rows):
        rr = np.round(r).astype(int)
        p[k + 1, rr, x] = 0.9
        p[0, rr, x] = 0.1
    return p


def test_qc_grid_signal_counts_riding_a_line_not_crossing_a_dense_grid():
    """A good curve on a dense grid (a dark row every 6) touches grid rows in a third of its
    columns but never stays on one: the grid signal is ~0. A trace along one row while the model
    marks its curve elsewhere is 1; along the same row with nothing marked elsewhere it is 0 (the
    curve may well be drawn on that line)."""
    h, w = 80, 600
    img = np.full((h, w), 230, np.uint8)
    img[::6, :] = 110
    x = np.arange(w)
    r = 32 + 20 * np.sin(x / 25)
    img[np.round(r).astype(int), x] = 20
    rows = np.stack([r, np.full(w, 30.0)])
    probs = _probs(h, w, rows)
    sig = curve_signals(rows, np.full((2, w), 0.9), (1, 2), probs, img)
    touching = np.mean(np.round(r) % 6 == 0)
    assert touching > 0.1  # it does touch grid rows often
    assert sig[0]["grid"] < 0.05
    assert sig[1]["grid"] == 0.0  # nothing else marked as curve 2: not riding away from it

    missed = np.round(70 + 3 * np.sin(x / 9)).astype(int)  # the dashed curve 2 the trace left
    probs[2, missed, x] = 0.8
    sig = curve_signals(rows, np.full((2, w), 0.9), (1, 2), probs, img)
    assert sig[0]["grid"] < 0.05
    assert sig[1]["grid"] == pytest.approx(1.0)
    assert judge(sig[1], class_id=2)[0] and "rides a grid line" in judge(sig[1], class_id=2)[1]


def test_qc_grid_signal_tells_a_flat_stretch_of_curve_from_a_line():
    """A curve flat on one row for 600 columns (a shale baseline) darkens that row across the
    window just as a grid line does; it is not riding a line, because the row is blank where the
    curve has left it. On a row that stays dark after the curve leaves it, the stretch is riding
    the line only when the model marks the curve somewhere else there."""
    h, w = 80, 2000
    x = np.arange(w)
    r = 40 + 25 * np.sin(x / 60)
    r[600:1200] = 20.0  # the flat stretch
    img = np.full((h, w), 230, np.uint8)
    img[::16, :] = 170  # a light grid that the flat row is not on
    img[np.round(r).astype(int), x] = 20
    rows = np.stack([r, np.full(w, 70.0)])
    img[70, :] = 20  # curve 2: flat all the way on a dark row
    probs = _probs(h, w, rows)
    probs[2, 4, :] = 0.7  # the model marks curve 2 on row 4 too: the flat trace may have left it
    sig = curve_signals(rows, np.full((2, w), 0.9), (1, 2), probs, img)
    assert sig[0]["grid"] == 0.0
    assert sig[1]["grid"] == pytest.approx(1.0)  # it never leaves its row: a line or not, it cannot be told

    on_line = img.copy()
    on_line[20, :] = 60  # now a dark line runs along row 20 the whole way
    sig = curve_signals(rows, np.full((2, w), 0.9), (1, 2), probs, on_line)
    assert sig[0]["grid"] == 0.0  # drawn on the line: the model marks curve 1 nowhere else there
    elsewhere = probs.copy()
    elsewhere[1, np.round(45 + 8 * np.sin(x[600:1200] / 30)).astype(int), x[600:1200]] = 0.9
    sig = curve_signals(rows, np.full((2, w), 0.9), (1, 2), elsewhere, on_line)
    assert sig[0]["grid"] == pytest.approx(600 / w, abs=0.02)


def test_qc_passes_a_good_trace_and_flags_confidently_wrong_ones():
    img, truth = _scan()
    h, w = img.shape
    conf = np.full((2, w), 0.9)
    probs = _probs(h, w, truth)
    x = np.arange(w)
    gaps = (x // 8) % 2 == 1  # curve 2 drawn broken, as the contract draws it: the pens tell them apart
    probs[2, truth[1].astype(int)[gaps], x[gaps]] = 0.0
    probs[0] = 1 - probs[1] - probs[2]
    good = curve_signals(truth, conf, (1, 2), probs, img)
    assert [judge(s, class_id=c)[0] for s, c in zip(good, (1, 2))] == [False, False], [judge(s) for s in good]
    # the pen rule (off by default since stage 12's retune; min_pen 0.05 before): two solid pens cannot
    # tell which is curve 1; the classes can, decisively, and settle it
    pens = QCThresholds(min_pen=0.05)
    same_pen = curve_signals(truth, conf, (1, 2), _probs(h, w, truth), img)
    assert all(s["margin"] > pens.pen_margin for s in same_pen)
    assert not any("pen contrast" in judge(s, pens)[1] for s in same_pen)
    assert all("pen contrast" in judge(s, QCThresholds(min_pen=0.05, pen_margin=9.0))[1] for s in same_pen)  # 9: always
    # two solid pens and classes that cannot tell them apart either: which is curve 1 is a guess, and QC
    # says so: by the class margin, and by the pens where that rule is on
    alike = _probs(h, w, truth)
    alike[1:3] = alike[1:3].max(axis=0, keepdims=True) / 2
    guess = curve_signals(truth, conf, (1, 2), alike, img)
    assert all(abs(s["margin"]) < 0.05 for s in guess)
    assert all("class margin" in judge(s, class_id=cid)[1] for s, cid in zip(guess, (1, 2)))
    assert all("pen contrast" in judge(s, pens, class_id=cid)[1] for s, cid in zip(guess, (1, 2)))

    # curve 2's trace rides curve 1's ink (same rows): both confident, both on ink
    same = np.stack([truth[0], truth[0]])
    sig = curve_signals(same, conf, (1, 2), _probs(h, w, same), img)
    flagged, reason = judge(sig[1])
    assert flagged and "shares ink" in reason

    # a trace along the horizontal grid line: on ink, but a grid row, and flat
    grid = np.stack([truth[0], np.full(w, 10.0)])
    sig = curve_signals(grid, conf, (1, 2), _probs(h, w, grid), img)
    flagged, reason = judge(sig[1])
    assert flagged and "grid" in reason

    # a confident trace across blank paper: no ink under it
    blank = np.stack([truth[0], np.round(58 + 3 * np.sin(np.arange(w) / 20))])
    sig = curve_signals(blank, conf, (1, 2), _probs(h, w, blank), img)
    flagged, reason = judge(sig[1])
    assert flagged and "off the ink" in reason

    # identity doubtful: curve 1's class wins on curve 2's pixels (a tie is not flagged: the tuned
    # margin is below 0, since the model's classes often hesitate on good traces)
    p = _probs(h, w, truth)
    x = np.arange(w)
    p[1, truth[1].astype(int), x] = 0.6
    p[2, truth[1].astype(int), x] = 0.3
    sig = curve_signals(truth, conf, (1, 2), p, img)
    assert "margin" in judge(sig[1])[1]


def test_curve_2_has_its_own_margin_threshold():
    # the model calls most broken backup pens curve 1, so curve 2's margin is below 0 on good traces
    sig = {"coverage": 1.0, "confidence": 0.9, "margin": -0.3}
    t = QCThresholds(min_margin=-0.1, min_margin_2=-1.0)
    assert "margin" in judge(sig, t, 1)[1] and "margin" in judge(sig, t)[1]  # None judges as curve 1
    assert judge(sig, t, 2) == (False, "")
    assert "margin" in judge(sig, QCThresholds(min_margin_2=-0.2), 2)[1]


def test_qc_without_a_curve_says_so():
    assert judge({"coverage": 0.0}) == (True, "no curve found")
    t = QCThresholds(min_coverage=0.9)
    flagged, reason = judge({"coverage": 0.5, "confidence": 0.9}, t)
    assert flagged and "low coverage" in reason


def test_evaluate_cli_writes_a_report_with_baselines(tmp_path, capsys):
    from veernet_ray.evaluate.cli import main
    from veernet_ray.infer.cli import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "m")
    out = tmp_path / "report"
    rc = main(["--checkpoint", str(ckpt), "--n", "1", "--width", "640,800", "--data", str(tmp_path / "data"),
               "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "viterbi-ink" in text and "darkest-row" in text and "iou_1" in text and "bad_flagged" in text
    report = json.loads((out / "report.json").read_text())
    import cv2

    picture = cv2.imread(str(out / "report.png"))  # the picture report.md shows, and the printout names
    assert picture is not None and picture.shape[0] > 400 and picture.shape[1] > 1000 and picture.std() > 10
    assert "(report.png)" in (out / "report.md").read_text() and str(out / "report.png") in text
    fams = {r["family"] for r in report["curves"]}
    assert {"all", "heldout-dashgrid", "heldout-bitonal", "heldout-faded", "heldout-plain"} <= fams
    import pandas as pd

    df = pd.read_parquet(out / "curves.parquet")
    assert set(df["method"]) == {"model", "viterbi-ink", "darkest-row"}
    assert len(df[df.method == "model"]) == 8  # 4 families x 1 scan x 2 curves
    # the rules table counts what the per-curve reasons say
    from collections import Counter

    from veernet_ray.trace.qc import reason_rules

    assert "QC rules over all families" in text
    model = df[(df.method == "model") & df.flagged.astype(bool)]
    want = Counter(rule for reason in model["reason"] for rule in reason_rules(reason))
    assert {r["rule"]: r["flags"] for r in report["qc_rules"]} == dict(want)


def test_qc_table_shares_for_bad_good_whole_and_off_curves():
    from veernet_ray.evaluate.heldout import qc_table

    nan = float("nan")
    rows = [  # (r2, mae, coverage, flagged)
        *[{"family": "f", "method": "model", "r2": r2, "mae": mae, "coverage": cov, "flagged": fl}
          for r2, mae, cov, fl in [(-3.0, 0.30, 1.0, True),  # bad, off, flagged
                                   (0.5, 0.005, 1.0, False),  # bad by R^2 (a flat curve a hair off), not off
                                   (nan, nan, 0.0, True),  # no trace: bad and off
                                   (0.99, 0.002, 1.0, True),  # good, whole, flagged
                                   (0.97, 0.004, 0.5, True),  # good over half the depth
                                   (0.98, 0.003, 0.95, False),  # good, whole
                                   (0.9, 0.05, 1.0, False)]],  # neither bad nor good, but off
        {"family": "f", "method": "viterbi-ink", "r2": -9.0, "mae": 0.5, "coverage": 1.0},
    ]
    (all_,) = [r for r in qc_table(rows) if r["family"] == "all"]
    assert (all_["curves"], all_["flagged"], all_["bad"], all_["good"], all_["whole_good"], all_["off"]) == (7, 4, 3, 3, 2, 3)
    assert all_["bad_flagged"] == pytest.approx(2 / 3) and all_["good_flagged"] == pytest.approx(2 / 3)
    assert all_["whole_good_flagged"] == pytest.approx(1 / 2) and all_["off_flagged"] == pytest.approx(2 / 3)


def test_qc_rules_table_counts_each_rule_and_the_curves_only_it_flags():
    from veernet_ray.evaluate.heldout import qc_rules_table

    rows = [
        {"method": "model", "r2": -1.0, "flagged": True, "reason": "low coverage 0.40 < 0.65"},
        {"method": "model", "r2": 0.99, "flagged": True,
         "reason": "low coverage 0.50 < 0.65; trace off the ink: ink support 0.70 < 0.80"},
        {"method": "model", "r2": 0.99, "flagged": True, "reason": "trace off the ink: ink support 0.10 < 0.80"},
        {"method": "model", "r2": 0.9, "flagged": True, "reason": "trace off the ink: ink support 0.60 < 0.80"},
        {"method": "model", "r2": float("nan"), "flagged": True, "reason": "no curve found"},
        {"method": "model", "r2": 0.99, "flagged": False, "reason": ""},
        {"method": "viterbi-ink", "r2": -5.0},
    ]
    table = {r["rule"]: r for r in qc_rules_table(rows)}
    assert list(table) == ["trace off the ink: ink support", "low coverage", "no curve found"]
    assert table["trace off the ink: ink support"] == {
        "rule": "trace off the ink: ink support", "flags": 3, "bad": 0, "bad_alone": 0, "good": 2, "good_alone": 1}
    assert table["low coverage"] == {"rule": "low coverage", "flags": 2, "bad": 1, "bad_alone": 1, "good": 1,
                                     "good_alone": 0}
    assert table["no curve found"]["bad_alone"] == 1  # no trace at all counts as bad
    assert qc_rules_table([r for r in rows if not r.get("flagged")]) == []


def test_evaluate_cli_errors_are_one_line(tmp_path, capsys):
    from veernet_ray.evaluate.cli import main

    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--n", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]
    with pytest.raises(SystemExit):
        main(["--set", "nope"])


def test_qc_pen_signal_says_which_trace_is_the_solid_pen():
    """pen = solidity(curve 1's trace) - solidity(curve 2's): about +0.5 for a solid curve 1 and a
    half-broken curve 2, the same value on both rows; swapped traces read negative; judged only when
    its threshold is not -1."""
    img, truth = _scan()
    h, w = img.shape
    conf = np.full((2, w), 0.9)
    probs = _probs(h, w, truth)
    x = np.arange(w)
    gaps = (x // 8) % 2 == 1
    probs[2, truth[1].astype(int)[gaps], x[gaps]] = 0.0  # curve 2 drawn dashed: half its columns blank
    probs[0] = 1 - probs[1] - probs[2]
    sig = curve_signals(truth, conf, (1, 2), probs, img)
    assert sig[0]["pen"] == pytest.approx(0.5, abs=0.05) and sig[1]["pen"] == sig[0]["pen"]
    swapped = curve_signals(truth[::-1].copy(), conf, (1, 2), probs, img)
    assert swapped[0]["pen"] == pytest.approx(-sig[0]["pen"])
    pens = QCThresholds(min_pen=0.05)  # the rule as it was before stage 12's retune turned it off
    assert "pen contrast" in judge(swapped[0], pens)[1] and "pen" not in judge(sig[0], pens)[1]
    assert "pen" not in judge(swapped[0])[1]  # -1 (the default): off


def test_evaluate_cache_reuses_the_models_probabilities(tmp_path, capsys):
    """--cache keeps each scan's uint8 probabilities under DIR/<checkpoint hash>/<family>/ and a second
    run reads them instead of running the model: its curves are the same, to the last digit."""
    import pandas as pd

    from veernet_ray.evaluate.cli import main
    from veernet_ray.infer.cli import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "m")
    args = ["--checkpoint", str(ckpt), "--n", "1", "--width", "640,800", "--data", str(tmp_path / "data"),
            "--set", "train-style", "--no-baselines", "--quiet", "--cache", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    cached = sorted((tmp_path / "cache").glob("*/train/*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).dtype == np.uint8
    stamp = cached[0].stat().st_mtime_ns
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert cached[0].stat().st_mtime_ns == stamp  # read, not written again
    a, b = (pd.read_parquet(tmp_path / d / "curves.parquet") for d in "ab")
    pd.testing.assert_frame_equal(a, b)


def test_evaluate_cache_is_keyed_by_the_scans_pixels_not_only_its_name(tmp_path):
    """An evaluation set generated again under the same ids (after a generator change) must not read the
    probabilities cached for the scans it replaced: the cache file names the pixels' digest."""
    from veernet_ray.evaluate.heldout import cache_file_for, model_probs
    from veernet_ray.infer.cli import tiny_checkpoint
    from veernet_ray.infer.stages import ModelStage

    stage = ModelStage(tiny_checkpoint(tmp_path / "m").read_bytes(), batch_size=1)
    rng = np.random.default_rng(0)
    old = rng.integers(0, 255, (96, 256), dtype=np.uint8)
    new = old.copy()
    new[40:44, :] = 0  # the same scan id, drawn again with one more line
    f_old, f_new = (cache_file_for(tmp_path / "c", "train", "s1_000000", im) for im in (old, new))
    assert f_old != f_new and f_old.parent == f_new.parent and f_old.name.startswith("s1_000000-")
    assert cache_file_for(tmp_path / "c", "train", "s1_000000", old.copy()) == f_old  # stable
    assert cache_file_for(tmp_path / "c", "train", "s1_000000", old.reshape(256, 96)) != f_old  # shape counts
    p_old = model_probs(stage, old, f_old)
    p_new = model_probs(stage, new, f_new)
    assert f_old.is_file() and f_new.is_file()
    assert np.array_equal(p_new, stage.forward([new])[0]) and not np.array_equal(p_new, p_old)


def test_qc_reads_a_wrapped_trace_where_its_ink_is():
    """A backup curve's unwrapped rows leave the page; QC reads the pixels at `page` rows, so a
    good wrapped trace has ink under it (read at the unwrapped rows, a third of it had none)."""
    from veernet_ray.trace import trace_curves

    h, w = 96, 600
    period = 0.8 * h
    x = np.arange(w)
    # beyond the top edge for the first 200 columns, then on its scale (a backup over more than 40% of the
    # depth would leave the main scale in doubt, and QC flags that: test_qc_flags_a_trace_whose_main_scale...)
    unwrapped = -24 + 0.12 * x
    drawn = np.mod(unwrapped, period)
    img = np.full((h, w), 230, np.uint8)
    img[np.round(drawn).astype(int), x] = 20
    probs = _probs(h, w, np.stack([drawn]))[:2]
    probs[0] = 1 - probs[1]
    res = trace_curves(probs, (1,), wrap_px={1: period})
    conf = res.confidence
    sig = curve_signals(res.rows, conf, (1,), probs, img, {1: period}, page=res.page)[0]
    assert sig["ink"] > 0.95 and not judge(sig)[0], judge(sig)
    blind = curve_signals(res.rows, conf, (1,), probs, img, {1: period})[0]
    assert blind["ink"] < 0.8


def test_qc_ink_rule_reads_a_broken_pen_against_the_paper_beside_it():
    """A right trace of a dashed curve 2 has ink under only its dashes (support ~0.7, below
    min_ink), but paper a few rows off it: a high ink contrast, and the ink rule passes it. The same
    support along paper flecked with ink beside the trace too (no more ink on it than off it) is
    flagged, and with `ink_contrast=9` (the old rule) both are."""
    h, w = 128, 1200
    x = np.arange(w)
    curve = 64 + 30 * np.sin(x / 90.0)
    dashed = (x % 22) < 16  # 16 px on, 6 off
    img = np.full((h, w), 225, np.uint8)
    for dr in (-1, 0, 1):  # a 3 px pen
        img[np.round(curve[dashed]).astype(int) + dr, x[dashed]] = 30
    rows = np.stack([np.full(w, 10.0), curve])  # curve 1 elsewhere, curve 2 on its dashes
    conf = np.full((2, w), 0.9)
    right = curve_signals(rows, conf, (1, 2), _probs(h, w, rows), img)[1]
    assert 0.6 < right["ink"] < QCThresholds().min_ink and right["ink_contrast"] > QCThresholds().ink_contrast, right
    assert "off the ink" not in judge(right, QCThresholds(), 2)[1]
    assert "trace off the ink" in judge(right, QCThresholds(ink_contrast=9.0), 2)[1]

    flecked = np.full((h, w), 225, np.uint8)
    flecked[np.random.default_rng(3).random((h, w)) < 0.25] = 40  # ink under about half of any row's windows
    flat = np.stack([np.full(w, 10.0), np.full(w, 64.0)])
    off = curve_signals(flat, conf, (1, 2), _probs(h, w, flat), flecked)[1]
    assert off["ink"] < QCThresholds().min_ink and abs(off["ink_contrast"]) < 0.1, off
    assert "trace off the ink: ink support" in judge(off, QCThresholds(), 2)[1]


def _unwrapped_signals(offsets: dict[str, np.ndarray], period: float | None = 80.0) -> dict[str, dict]:
    """QC signals of one curve drawn on a 96 x 900 scan (a sine, on its page rows), traced as its page
    rows plus each of `offsets` (whole periods, per column), with a backup scale of `period` rows."""
    h, w = 96, 900
    page = 48 + 30 * np.sin(np.arange(w) / 60.0)
    img = np.full((h, w), 230, np.uint8)
    img[np.round(page).astype(int), np.arange(w)] = 20
    probs = _probs(h, w, np.stack([page]))[:2]
    probs[0] = 1 - probs[1]
    conf = np.full((1, w), 0.9)
    wrap = {1: period} if period else None
    return {name: curve_signals((page + off)[None, :], conf, (1,), probs, img, wrap, page=page[None, :])[0]
            for name, off in offsets.items()}


def test_qc_flags_a_trace_that_backs_up_beyond_both_ends_of_its_scale():
    """A backup scale lies beyond one end of the scale: a trace unwrapped one period up in one
    stretch passes; one that also goes a period down elsewhere misread a crossing (cycles 2)."""
    x, period = np.arange(900), 80.0
    one_way = np.where((x > 300) & (x < 400), period, 0.0)
    both_ways = one_way + np.where((x > 600) & (x < 700), -period, 0.0)
    sig = _unwrapped_signals({"one": one_way, "both": both_ways}, period)
    assert sig["one"]["cycles"] == 1.0 and "backs up" not in judge(sig["one"])[1]
    assert sig["both"]["cycles"] == 2.0
    assert "backs up beyond both ends of its scale: wrap cycles 2.00 > 1.00" in judge(sig["both"])[1]
    assert "backs up" not in judge(sig["both"], QCThresholds(max_cycles=9.0))[1]
    no_wrap = _unwrapped_signals({"both": both_ways}, None)["both"]
    assert no_wrap["cycles"] == 0.0  # without a backup scale there are no cycles to count
    assert no_wrap["backup"] == 0.0


def test_qc_flags_a_trace_whose_main_scale_is_in_doubt():
    """The unwrap calls the cycle a trace spends most of the depth on its main scale. A backup over a
    ninth of the depth passes; one over half of it (a curve drawn on its backup for more than half the
    depth reads like that, a whole period off everywhere) is flagged."""
    x, period = np.arange(900), 80.0
    sig = _unwrapped_signals({"short": np.where((x >= 300) & (x < 400), period, 0.0),
                              "long": np.where((x >= 300) & (x < 750), period, 0.0)}, period)
    assert sig["short"]["backup"] == pytest.approx(100 / 900) and "main scale" not in judge(sig["short"])[1]
    assert sig["long"]["backup"] == pytest.approx(450 / 900)
    assert "main scale in doubt: share on the backup scale 0.50 > 0.45" in judge(sig["long"])[1]
    assert "main scale" not in judge(sig["long"], QCThresholds(max_backup=9.0))[1]
