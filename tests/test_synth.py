"""Synthetic generator: determinism, geometry, mask/LAS/sidecar agreement, rates, real LAS, errors."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest

from veernet_ray.synth import ScanStyle, SynthConfig, generate_dataset, render_sample
from veernet_ray.synth.generate import DatasetExistsError
from veernet_ray.synth.las_source import LasSourceError, load_las_pool
from veernet_ray.synth.styles import SynthConfigError

LAS_DIR = Path("/work/shared/data/las")
TINY = dict(width=(200, 360), height=(64, 80))
NO_SKEW = ScanStyle(p_skew=0.0)


def tiny(style: ScanStyle | None = None, **kw) -> SynthConfig:
    return SynthConfig(width=TINY["width"], height=TINY["height"], style=style or ScanStyle(), **kw).validate()


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------- determinism
def test_render_sample_is_a_function_of_seed_and_index():
    a, b = render_sample(7, 3, tiny()), render_sample(7, 3, tiny())
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.sidecar.to_dict() == b.sidecar.to_dict()
    np.testing.assert_array_equal(a.values[0], b.values[0])
    c = render_sample(7, 4, tiny())
    assert not (a.image.shape == c.image.shape and np.array_equal(a.image, c.image))


def test_same_seed_same_bytes(tmp_path):
    kw = dict(n=3, seed=11, width=TINY["width"], height=TINY["height"], progress=False)
    m1 = generate_dataset(tmp_path / "a", **kw)
    m2 = generate_dataset(tmp_path / "b", **kw)
    files = _files(m1.parent)
    assert files == _files(m2.parent)
    assert {f.suffix for f in files} >= {".tif", ".las", ".json", ".parquet"}
    for f in files:
        assert filecmp.cmp(m1.parent / f, m2.parent / f, shallow=False), f


@pytest.mark.slow
def test_ray_workers_give_the_same_bytes(tmp_path):
    kw = dict(n=4, seed=5, width=TINY["width"], height=TINY["height"], progress=False)
    m1 = generate_dataset(tmp_path / "one", workers=1, **kw)
    m2 = generate_dataset(tmp_path / "two", workers=2, **kw)
    for f in _files(m1.parent):
        assert filecmp.cmp(m1.parent / f, m2.parent / f, shallow=False), f


# ---------------------------------------------------------------- geometry
@pytest.mark.parametrize("preset,wr,hr", [("demo", (640, 2560), (96, 128)), ("seed", (3200, 12800), (480, 640))])
def test_preset_shapes(preset, wr, hr):
    cfg = SynthConfig.from_preset(preset)
    assert (cfg.width, cfg.height) == (wr, hr)
    if preset == "demo":
        for i in range(3):
            s = render_sample(1, i, cfg)
            assert wr[0] <= s.width <= wr[1] and hr[0] <= s.height <= hr[1]
            assert s.image.dtype == np.uint8 and s.mask.dtype == np.uint8 and s.mask.max() <= 2


def test_explicit_ranges_and_invalid_ranges():
    s = render_sample(0, 0, SynthConfig.from_preset("demo", width=(300, 300), height=(70, 70)))
    assert s.image.shape == (70, 300)
    for bad in [dict(width=(500, 400)), dict(height=(10, 20)), dict(width=(0, 100))]:
        with pytest.raises(SynthConfigError):
            SynthConfig.from_preset("demo", **bad)
    with pytest.raises(SynthConfigError):
        SynthConfig.from_preset("huge")


# ---------------------------------------------------------------- mask / LAS / sidecar agreement
def _check_agreement(image, mask, sidecar, values, widths):
    """Mask rows of each curve map through the sidecar to the truth values (modulo one period if wrapped).

    Every ink pixel of a curve at column c lies within the rows its truth spans over
    the columns a pen of that width reaches (c +- (1 + w/2)), widened by half the line
    width plus 1.5 px; where the truth is flat over those columns and nothing covers the curve,
    the centre of the ink run is the truth row within one pixel.
    """
    t0 = min(r for r, _ in sidecar.curves[0].ref)
    t1 = max(r for r, _ in sidecar.curves[0].ref)
    period = t1 - t0
    checked = 0
    for ax, vals, w in zip(sidecar.curves, values, widths):
        r = ax.row_at(vals)
        other = (mask > 0) & (mask != ax.class_id)
        shifts = np.arange(-3, 4) * period if ax.wrap else np.zeros(1)
        tol = 1.5 + w / 2.0  # OpenCV anti-aliased pens ink about half a pixel beyond w/2
        for c in np.flatnonzero((mask == ax.class_id).any(axis=0)):
            rows = np.flatnonzero(mask[:, c] == ax.class_id)
            assert np.isfinite(vals[c]), f"curve {ax.class_id} drawn at column {c} where truth is NaN"
            hw = 1 + int(np.ceil(w / 2))  # a pen of width w inks columns up to w/2 beyond a vertex
            near = r[max(c - hw, 0) : c + hw + 1]
            near = near[np.isfinite(near)]
            lo, hi = near.min() - tol, near.max() + tol
            ok = ((rows[:, None] + shifts[None, :] >= lo) & (rows[:, None] + shifts[None, :] <= hi)).any(axis=1)
            assert ok.all(), (ax.class_id, c, r[c], rows[~ok])
            if np.ptp(near) < 1.0 and not other[:, c].any():
                centre = 0.5 * (rows.min() + rows.max())
                assert np.min(np.abs(centre + shifts - r[c])) <= 1.0, (ax.class_id, c, centre, r[c])
                checked += 1
    return checked


def test_mask_sidecar_truth_agree_in_memory():
    style = NO_SKEW.replace(p_wrap=0.5, p_cross=0.7)
    total = 0
    cfg = SynthConfig(width=(500, 800), height=(64, 80), style=style)
    for i in range(24):  # spectral curves wiggle: fewer flat columns per scan than blocky ones had
        s = render_sample(21, i, cfg)
        widths = [int(s.meta["curve1_style"].split(":")[1]), int(s.meta["curve2_style"].split(":")[1])]
        total += _check_agreement(s.image, s.mask, s.sidecar, s.values, widths)
        wrap_axes = [ax.wrap is not None for ax in s.sidecar.curves]
        assert any(wrap_axes) == s.meta["wrap"]
    assert total > 40  # flat, unoccluded columns where the centre rule was checked


def test_files_agree_with_each_other(tmp_path):
    from veernet_ray.data.manifest import read_manifest
    from veernet_ray.io import read_header, read_image
    from veernet_ray.las.lasfile import read_las_curves
    from veernet_ray.las.sidecar import Sidecar

    m = generate_dataset(tmp_path / "d", n=3, seed=2, style=NO_SKEW, progress=False, **TINY)
    df = read_manifest(m, check_files=True)
    for _, row in df.iterrows():
        image, mask = read_image(row["image"]), read_image(row["mask"])
        hdr = read_header(row.image)
        assert (hdr.height, hdr.width) == (row.height, row.width) == image.shape
        sc = Sidecar.load(row.calibration)
        depth, curves, unit = read_las_curves(row.las)
        assert unit.upper() == sc.depth.unit
        np.testing.assert_allclose(depth, sc.depth.depth_at(np.arange(row.width)), atol=1e-4)
        vals = [curves[ax.mnemonic] for ax in sc.curves]
        widths = [int(row.curve2_style.split(":")[1])] * 2  # curve 1 width is not in the manifest; <= 6
        _check_agreement(image, mask, sc, vals, [6, widths[1]])
        assert sc.extra["skew_deg"] == 0.0 and sc.extra["curve_on_top"] in (1, 2)


# ---------------------------------------------------------------- rates
def test_wrap_and_crossing_rates():
    n = 40
    half = [render_sample(3, i, tiny(NO_SKEW.replace(p_wrap=0.5))).meta["wrap"] for i in range(n)]
    assert 0.3 <= np.mean(half) <= 0.7
    none = [render_sample(3, i, tiny(NO_SKEW.replace(p_wrap=0.0))).meta["wrap"] for i in range(20)]
    assert not any(none)
    cross = [render_sample(4, i, tiny(NO_SKEW.replace(p_wrap=0.0, p_cross=1.0))).meta["crossing"] for i in range(20)]
    assert np.mean(cross) >= 0.85
    apart = [render_sample(4, i, tiny(NO_SKEW.replace(p_wrap=0.0, p_cross=0.0))).meta["crossing"] for i in range(20)]
    assert not any(apart)


def test_curve_styles_are_distinguishable():
    for i in range(15):
        s = render_sample(9, i, tiny())
        p2, w2 = s.meta["curve2_style"].split(":")
        w1 = int(s.meta["curve1_style"].split(":")[1])
        assert p2 != "solid" and 1 <= w1 <= 6 and 1 <= int(w2) <= 4
        assert p2 != "dash_dot_dot"  # held out of every training style
        if p2 == "solid_thin":
            assert int(w2) < w1


# ---------------------------------------------------------------- real LAS
def test_real_las_pool_handles_the_shared_files():
    pool = load_las_pool(LAS_DIR)
    names = dict(pool.files)
    assert "F03-02.las" in names  # descending depth, STEP 0, -9999 sentinels
    for _, curves in pool.files:
        for c in curves:
            assert np.all(np.diff(c.depth) > 0)
            fin = c.values[np.isfinite(c.values)]
            assert fin.min() > -9000
    cfg = tiny(NO_SKEW, source="las")
    real = 0
    for i in range(6):
        s = render_sample(0, i, cfg, pool)
        real += s.source != "synthetic"
        widths = [int(s.meta["curve1_style"].split(":")[1]), int(s.meta["curve2_style"].split(":")[1])]
        _check_agreement(s.image, s.mask, s.sidecar, s.values, widths)
    assert real >= 4


def test_a_real_curve_whose_scale_no_sidecar_may_hold_is_replaced(tmp_path):
    """kennetcook2_P-129.las's RLA2 holds an undeclared sentinel (100,000, from 0.004): in a narrow band
    its log scale ran 1e-4 to 1e17, past the sidecar's bounds, and `veernet synth --seed 13` stopped at
    sample 574. That curve is drawn stochastic instead; its partner stays real, and the sidecar saves."""
    from veernet_ray.synth.styles import HELDOUT_LAS, style_family

    cfg = SynthConfig.from_preset("seed", width=(640, 1536), source="mixed", style=style_family("train"))
    s = render_sample(13, 574, cfg, load_las_pool(LAS_DIR, exclude=HELDOUT_LAS))
    assert s.meta["curve1"] == "DRHO:kennetcook2_P-129.las" and s.meta["curve2"].endswith(":synthetic")
    s.sidecar.save(tmp_path / "s.json")  # raised SidecarError before
    assert all(abs(v) <= 1e12 for c in s.sidecar.curves for _, v in c.ref)


def test_real_las_dataset_sources(tmp_path):
    m = generate_dataset(tmp_path / "r", n=3, seed=1, las_dir=LAS_DIR, source="las", progress=False, **TINY)
    import pandas as pd

    df = pd.read_parquet(m)
    assert set(df.source) - {"synthetic"} <= {p.name for p in LAS_DIR.glob("*.las")}
    assert (df.source != "synthetic").any()


def test_bad_las_folder_is_a_clear_error(tmp_path, capsys):
    from veernet_ray.synth.cli import main

    bad = tmp_path / "las"
    bad.mkdir()
    (bad / "junk.las").write_text("this is not a LAS file\n\x00\x01")
    (bad / "empty.las").write_text("")
    with pytest.warns(UserWarning):
        with pytest.raises(LasSourceError, match="junk.las"):
            load_las_pool(bad)
    rc = main([str(tmp_path / "out"), "--n", "2", "--las-dir", str(bad), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err and "junk.las" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- manifest and folders
def test_manifest_columns_and_splits(tmp_path):
    from veernet_ray.data.manifest import REQUIRED, read_manifest

    m = generate_dataset(tmp_path / "d", n=10, seed=0, split=(0.6, 0.2, 0.2), preview=2, progress=False, **TINY)
    df = read_manifest(m)
    assert list(df.columns[: len(REQUIRED)]) == list(REQUIRED)
    assert df.id.is_unique and set(df.source) == {"synthetic"}
    assert df.split.value_counts().to_dict() == {"train": 6, "val": 2, "test": 2}
    assert all(Path(p).is_absolute() and Path(p).exists() for p in df.image)
    assert df.width.dtype.kind == "i" and df.height.dtype.kind == "i"
    assert (m.parent / "preview.png").stat().st_size > 1000
    params = json.loads((m.parent / "synth.json").read_text())["params"]
    assert params["n"] == 10 and params["seed"] == 0


def test_existing_dataset_rules(tmp_path, capsys):
    from veernet_ray.synth.cli import main

    out = tmp_path / "d"
    kw = dict(n=2, seed=0, progress=False, **TINY)
    m = generate_dataset(out, **kw)
    before = m.stat().st_mtime_ns
    assert generate_dataset(out, **kw) == m and m.stat().st_mtime_ns == before  # same params: nothing to do
    with pytest.raises(DatasetExistsError, match="overwrite"):
        generate_dataset(out, **{**kw, "seed": 1})
    generate_dataset(out, overwrite=True, **{**kw, "seed": 1})
    assert json.loads((out / "synth.json").read_text())["params"]["seed"] == 1
    rc = main([str(out), "--n", "2", "--seed", "5", "--width", "200,360", "--height", "64,80", "--quiet"])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    assert not list(tmp_path.glob(".d.synth-tmp-*"))  # nothing half-written left behind


def test_cli_errors_are_one_line(tmp_path, capsys):
    from veernet_ray.synth.cli import main

    assert main([str(tmp_path / "x"), "--width", "900,100"]) == 2
    assert main([str(tmp_path / "x"), "--split", "0.5,0.5,0.5"]) == 2
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([str(blocker / "sub"), "--n", "1", "--quiet", "--width", "200,200", "--height", "64,64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("veernet synth: error:") for line in err)
    assert not (tmp_path / "x").exists()


def test_bench_smoke(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_synth", Path(__file__).parents[1] / "bench" / "synth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--smoke-test"]) == 0
    assert "img/s/core" in capsys.readouterr().out


# ---------------------------------------------------------------- realism and held-out styles
def test_spectral_signal_is_not_a_square_wave():
    from veernet_ray.synth.signals import spectral_signal, stochastic_signal

    rng = np.random.default_rng(5)
    x = spectral_signal(rng, 4000)
    assert x.shape == (4000,) and np.isfinite(x).all()
    d = np.abs(np.diff(x))
    # a blocky signal is flat almost everywhere; a log wiggles in most columns
    assert np.mean(d < 1e-6) < 0.5
    spec = np.abs(np.fft.rfft(x - x.mean())) ** 2
    assert spec[1:40].mean() > 20 * spec[-1000:].mean()  # power falls with frequency
    a = stochastic_signal(np.random.default_rng(1), 500)
    b = stochastic_signal(np.random.default_rng(1), 500)
    np.testing.assert_array_equal(a, b)


def test_scan_effects_all_on_keep_mask_and_truth_in_step():
    style = NO_SKEW.replace(p_bitonal=1.0, p_speckle=1.0, p_halftone=1.0, p_blotch=1.0, p_fold=1.0,
                            p_formation_tops=1.0, p_header_splice=1.0, p_low_contrast=0.0, p_wrap=0.0)
    cfg = SynthConfig(width=(900, 1200), height=(96, 128), style=style)
    for i in range(4):
        s = render_sample(31, i, cfg)
        assert set(np.unique(s.image)) <= {0, 255}, "a bitonal scan holds two levels"
        assert s.meta["header_splice"]
        # mask pixels are ink: on a 1-bit scan almost all of them are black
        ink = s.image[s.mask > 0]
        assert ink.size and np.mean(ink == 0) > 0.8
        widths = [int(s.meta["curve1_style"].split(":")[1]), int(s.meta["curve2_style"].split(":")[1])]
        _check_agreement(s.image, s.mask, s.sidecar, s.values, widths)


def test_style_families_hold_out_pattern_and_wells(tmp_path):
    import pandas as pd

    from veernet_ray.synth.styles import HELDOUT_LAS, STYLE_FAMILIES, style_family

    assert not {"dash_dot_dot", "paired_dots"} & set(STYLE_FAMILIES["train"].curve2_patterns)
    for name, st in STYLE_FAMILIES.items():
        if name.startswith("heldout"):
            assert st.curve2_patterns == ("dash_dot_dot",)
        if name.startswith("val"):  # validation: a pattern neither training nor the held-out set draws
            assert st.curve2_patterns == ("paired_dots",)
    with pytest.raises(KeyError, match="valid"):
        style_family("nope")
    tr = pd.read_parquet(generate_dataset(tmp_path / "t", n=6, seed=3, las_dir=LAS_DIR, source="las",
                                          progress=False, **TINY))
    ho = pd.read_parquet(generate_dataset(tmp_path / "h", n=4, seed=3, las_dir=LAS_DIR, source="las",
                                          style_family="heldout-faded", progress=False, **TINY))
    assert not set(tr.source) & set(HELDOUT_LAS)
    assert set(ho.source) - {"synthetic"} <= set(HELDOUT_LAS) and (ho.source != "synthetic").any()
    assert set(ho["style"]) == {"heldout-faded"} and ho.curve2_style.str.startswith("dash_dot_dot").all()
    for fam in ("val-smudge", "val-brokengrid"):
        va = pd.read_parquet(generate_dataset(tmp_path / fam, n=3, seed=3, las_dir=LAS_DIR, source="las",
                                              style_family=fam, progress=False, **TINY))
        assert not set(va.source) & set(HELDOUT_LAS)  # validation styles, training wells
        assert set(va["style"]) == {fam} and va.curve2_style.str.startswith("paired_dots").all()
    from veernet_ray.evaluate.heldout import EVAL_SETS

    sets = {k: set(v) for k, v in EVAL_SETS.items()}
    assert all(f in STYLE_FAMILIES for fams in sets.values() for f in fams)
    assert not sets["val-style"] & (sets["heldout-style"] | sets["train-style"])  # three sets, no family shared


@pytest.mark.parametrize("up", [True, False])
@pytest.mark.parametrize("log", [False, True])
def test_a_wrapped_real_curve_backs_up_once_not_twenty_times(up, log):
    """A heavy-tailed window (most readings low, a long tail up, or the mirror) with a backup scale:
    the scale's end lies inside the data, and the extreme reading lies at most WRAP_MAX_SPAN scale
    widths from the scale's other end (one backup cycle), not the 25 that the 70-92th percentile
    alone gave on such windows."""
    from veernet_ray.synth.las_source import RealCurve
    from veernet_ray.synth.render import WRAP_MAX_SPAN, _real_curve

    rng = np.random.default_rng(3)
    depth = np.arange(2000.0)
    tail = np.exp(rng.normal(0.0, 1.6, depth.size))  # lognormal: the 99th percentile ~40x the median
    values = (tail if up else 1000.0 - tail) if not log else (tail if up else 1.0 / tail)
    if log:
        values = 10.0 ** (np.log(values) * 1.5)  # a heavy tail in decades too
    real = RealCurve("x.las", "RES" if log else "GR", "OHMM" if log else "API", "M", depth, values, log)
    t0, t1 = 10, 510
    band = (0.2, 1.4) if up else (-0.4, 0.8)
    for seed in range(8):
        curve = _real_curve(np.random.default_rng(seed), 1, real, depth, band, (t0, t1), True, up)
        u = (t1 - curve.axis.row_at(curve.values)) / (t1 - t0)  # track fractions; > 1 or < 0: backed up
        u = u[np.isfinite(u)]
        assert (u > 1).any() if up else (u < 0).any()  # it does wrap
        if up:
            assert u.max() <= WRAP_MAX_SPAN + 0.25, (seed, u.max())
        else:
            assert u.min() >= 1 - WRAP_MAX_SPAN - 0.25, (seed, u.min())


def _longest_hold(v: np.ndarray) -> int:
    """The longest run of one finite reading in v (NaN columns end a run)."""
    best = run = 0
    for a, b in zip(v[:-1], v[1:]):
        run = run + 1 if (np.isfinite(a) and a == b) else 0
        best = max(best, run)
    return best + 1


def test_held_readings_come_from_their_own_stream_and_keep_truth_and_mask_together():
    """p_flat makes a curve hold one reading over stretches of the depth (a straight line along the depth,
    as a grid line is). Its draws come from a side stream: the scale, the layout and every reading outside
    the held stretches are what p_flat=0 draws; the truth holds the reading, and the mask's ink sits on it.
    The held-out families keep p_flat at 0 (their well holds readings of its own)."""
    from veernet_ray.synth.styles import STYLE_FAMILIES

    off = SynthConfig.from_preset("demo", style=NO_SKEW.replace(p_flat=0.0, p_gaps=0.0, p_wrap=0.0))
    on = SynthConfig.from_preset("demo", style=NO_SKEW.replace(p_flat=1.0, p_gaps=0.0, p_wrap=0.0))
    for i in range(6):
        a, b = render_sample(37, i, off), render_sample(37, i, on)
        assert a.sidecar == b.sidecar and a.image.shape == b.image.shape
        w = a.image.shape[1]
        for k, (va, vb) in enumerate(zip(a.values, b.values)):
            assert np.array_equal(np.isfinite(va), np.isfinite(vb))  # holding draws no ink where none was
            assert _longest_hold(va) < 0.04 * w <= _longest_hold(vb), (i, k)
            assert np.mean(va[np.isfinite(va)] == vb[np.isfinite(vb)]) > 0.2  # the rest as it was
            # the mask's ink follows the held truth: its class sits on the truth row over the stretch
            ax = b.sidecar.curves[k]
            rows = np.round(ax.row_at(vb)).astype(float)
            cols = np.flatnonzero(np.isfinite(rows) & (rows >= 0) & (rows < b.mask.shape[0]))
            near = [np.any(b.mask[max(0, int(rows[x]) - 2): int(rows[x]) + 3, x] == ax.class_id) for x in cols]
            assert np.mean(near) > 0.6, (i, k, np.mean(near))
        assert np.array_equal(render_sample(37, i, on).image, b.image)  # deterministic
    assert all(STYLE_FAMILIES[f].p_flat == 0.0 for f in STYLE_FAMILIES if f.startswith("heldout"))
    assert STYLE_FAMILIES["train"].p_flat > 0


def test_heavy_rules_come_from_their_own_stream_and_stay_background():
    """p_heavy_rule draws a rule along the depth as dark as a pen. Its draws come from a side stream:
    at 0 every scan is what it was before the knob existed (the held-out families keep it at 0), and
    at 1 rows along the depth darken while the mask and the truth stay as they were."""
    from veernet_ray.synth.styles import STYLE_FAMILIES

    cfg = SynthConfig.from_preset("demo", style=NO_SKEW.replace(p_heavy_rule=0.0, p_bitonal=0.0))
    on = SynthConfig.from_preset("demo", style=NO_SKEW.replace(p_heavy_rule=1.0, p_bitonal=0.0))
    changed = 0
    for i in range(6):
        a, b = render_sample(31, i, cfg), render_sample(31, i, on)
        assert np.array_equal(a.mask, b.mask) and a.sidecar == b.sidecar
        assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a.values, b.values))
        diff = a.image.astype(int) - b.image.astype(int)
        rows = np.flatnonzero(np.mean(diff > 40, axis=1) > 0.5)  # rows darkened along most of the depth
        changed += rows.size > 0
        assert np.array_equal(render_sample(31, i, on).image, b.image)  # deterministic
    assert changed == 6
    assert all(STYLE_FAMILIES[f].p_heavy_rule == 0.0 for f in STYLE_FAMILIES if f != "train")


def test_held_readings_sit_on_heavy_rules_and_only_the_curve_is_curve_there():
    """p_flat_on_rule puts a held stretch on a heavy rule's row: the curve runs on the rule for a while,
    the mask calls that stretch curve, and the rule beyond the curve's ink stays background. A scan
    without rules draws nothing for it, so p_flat_on_rule leaves rule-less scans as they were, and at
    its default, 0, every scan is as it was (the evaluation sets stay as drawn)."""
    assert ScanStyle().p_flat_on_rule == 0.0
    style = NO_SKEW.replace(p_flat=1.0, p_heavy_rule=1.0, p_flat_on_rule=1.0, p_gaps=0.0, p_wrap=0.0, p_bitonal=0.0)
    on_rule = 0
    for i in range(6):
        b = render_sample(41, i, SynthConfig.from_preset("demo", style=style))
        paper = render_sample(41, i, SynthConfig.from_preset("demo", style=style.replace(p_heavy_rule=0.0)))
        h, w = b.mask.shape
        ruled = np.flatnonzero(np.mean(paper.image.astype(int) - b.image.astype(int) > 40, axis=1) > 0.5)
        assert ruled.size, i
        for k, v in enumerate(b.values):
            ax = b.sidecar.curves[k]
            held = np.zeros(w, bool)  # columns of a run of one reading longer than 4% of the depth
            x = 0
            while x < w:
                y = x
                while y + 1 < w and np.isfinite(v[x]) and v[y + 1] == v[x]:
                    y += 1
                if y - x + 1 >= 0.04 * w:
                    held[x : y + 1] = True
                x = y + 1
            row = np.round(ax.row_at(v[held])) if held.any() else np.array([])
            sits = np.array([np.min(np.abs(ruled - r)) <= 3 for r in row if np.isfinite(r)])
            if sits.size and sits.all():
                on_rule += 1
                r = int(row[0])
                cols = np.flatnonzero(held)
                assert np.mean(b.mask[max(0, r - 2): r + 3][:, cols] == ax.class_id) > 0.15, (i, k)
        # the rule row away from any curve ink stays background
        for r in ruled:
            assert np.mean(b.mask[r] == 0) > 0.3 or np.mean(b.mask[r] > 0) < 0.95
    assert on_rule >= 4
    # a style without rules: the flat stream draws nothing for p_flat_on_rule
    plain = NO_SKEW.replace(p_flat=1.0, p_heavy_rule=0.0, p_gaps=0.0)
    a = render_sample(41, 0, SynthConfig.from_preset("demo", style=plain.replace(p_flat_on_rule=0.0)))
    c = render_sample(41, 0, SynthConfig.from_preset("demo", style=plain.replace(p_flat_on_rule=1.0)))
    assert np.array_equal(a.image, c.image)
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a.values, c.values))
