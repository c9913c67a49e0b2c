"""Issue 14 hardening, the fast part: naming, bounds, validation and CLI refusals, without Ray.

Each test names the defect it guards (issue 14, items 1-7).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from veernet_ray.infer.listing import list_inputs
from veernet_ray.io import write_tiff
from veernet_ray.las.export import MAX_STEM_BYTES, assign_output_stems, clean_stem, output_path


def scan(h: int = 64, w: int = 256) -> np.ndarray:
    img = np.full((h, w), 250, np.uint8)
    x = np.arange(w)
    img[(h * 0.3 + h * 0.15 * np.sin(x / 17.0)).astype(int), x] = 10
    return img


# ------------------------------------------------------- 1. colliding names
def test_clean_stem_keeps_unicode_letters_and_bounds_bytes():
    assert clean_stem("井井.tif") == "井井" and clean_stem("Öl Feld.tif") == "Öl_Feld"
    assert clean_stem("a b.tif") == "a_b" and clean_stem("../x.tif") == "x"
    long = "é" * 300 + ".tif"
    stem = clean_stem(long)
    assert len(stem.encode()) <= MAX_STEM_BYTES and stem != clean_stem("é" * 299 + "x.tif")


def test_colliding_names_get_distinct_stable_stems():
    names = ["a b", "a_b", "井井", "油田", "dup", "dup", "A_B", "solo"]
    keys = ["a b.tif", "a_b.tif", "井井.tif", "油田.tif", "dup.tif", "dup.png", "A_B.tif", "solo.tif"]
    stems = assign_output_stems(names, keys)
    assert len({s.casefold() for s in stems}) == len(stems)  # unique, even on a case-insensitive disk
    assert stems[2:4] == ["井井", "油田"] and stems[-1] == "solo"  # no clash: the plain name
    assert all(s.startswith(("a_b-", "A_B-")) for s in (stems[0], stems[1], stems[6]))
    # stable: the same inputs in another order get the same names
    order = [7, 3, 0, 5, 1, 6, 2, 4]
    again = assign_output_stems([names[i] for i in order], [keys[i] for i in order])
    assert dict(zip(keys, stems)) == dict(zip([keys[i] for i in order], again))


def test_listing_gives_colliding_inputs_one_las_each(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in ("a b.tif", "a_b.tif", "井井.tif", "油田.tif", "dup.tif", "dup.png", "sub/dup.tif"):
        if name.endswith(".png"):
            import cv2

            cv2.imwrite(str(src / name), scan())
        else:
            write_tiff(src / name, scan())
    listing = list_inputs(str(src), tmp_path / "out")
    assert not listing.errors
    outs = [it.las_out for it in listing.items]
    assert len(outs) == 7 and len(set(outs)) == 7
    assert {Path(o).name for o in outs} >= {"井井.las", "油田.las"}
    assert all(Path(o).parent == (tmp_path / "out").resolve() for o in outs)
    # a re-run names them the same
    assert sorted(outs) == sorted(it.las_out for it in list_inputs(str(src), tmp_path / "out").items)


def test_output_path_refuses_a_stem_that_escapes(tmp_path):
    assert output_path(tmp_path, "x", stem="ok-1a2b").name == "ok-1a2b.las"
    for bad in ("../x", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            output_path(tmp_path, "x", stem=bad)


# ------------------------------------------------- 7. long names, temporaries
def test_atomic_write_of_a_name_near_the_file_system_limit(tmp_path):
    from veernet_ray.io import atomic_path

    target = tmp_path / ("n" * 245 + ".las")  # 249 bytes: legal, but not with a ".XXXXXXXX.part" added
    with atomic_path(target) as tmp:
        tmp.write_text("x")
    assert target.read_text() == "x" and not list(tmp_path.glob(".*.part"))


# ------------------------------------------- 4. one line and exit 2, at once
@pytest.mark.parametrize("command", ["infer", "train", "plan", "demo", "tune"])
def test_a_file_where_a_folder_is_needed_stops_at_once(command, tmp_path, capsys):
    import importlib
    import time

    from veernet_ray.cli import COMMANDS

    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    argv = {
        "infer": ["--input", str(tmp_path), "--output", str(a_file), "--no-tracking"],
        "train": ["--set", f"storage={a_file}"],
        "plan": ["--manifest", str(tmp_path / "m.parquet"), "--out", str(a_file / "sub")],
        "demo": ["--set", f"storage={a_file}"],
        "tune": ["losses", "--smoke", "--storage", str(a_file)],
    }[command]
    main = importlib.import_module(COMMANDS[command][0]).main
    t0 = time.perf_counter()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert time.perf_counter() - t0 < 10
    assert len(err.splitlines()) == 1 and "is a file" in err and str(a_file) in err, err


def test_demo_config_error_is_one_line(capsys):
    from veernet_ray.demo import main

    assert main(["--set", "train.epoch=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown key" in err


# ---------------------------------------------- 3. bounded work from inputs
def _sidecar(step=None, depths=(1000.0, 1025.5), values=(0.0, 150.0)) -> dict:
    depth = {"unit": "M", "ref": [{"px": 0, "depth": depths[0]}, {"px": 255, "depth": depths[1]}]}
    if step is not None:
        depth["step"] = step
    return {"orientation": "depth_along_width", "depth": depth,
            "curves": [{"class_id": 1, "mnemonic": "GR", "unit": "GAPI", "scale": "linear",
                        "ref": [{"px": 63, "value": values[0]}, {"px": 0, "value": values[1]}]}]}


def test_sidecar_step_and_depths_are_bounded_before_decoding(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    cases = {"fine": _sidecar(step=1e-4), "deep": _sidecar(depths=(1000.0, 1e300)),
             "far": _sidecar(depths=(0.0, 9e5)), "huge_value": _sidecar(values=(0.0, 1e300)),
             "ok": _sidecar(step=0.1), "quarter": _sidecar(step=0.1 / 4)}
    for name, side in cases.items():
        write_tiff(src / f"{name}.tif", scan())
        (src / f"{name}.json").write_text(json.dumps(side))
    listing = list_inputs(str(src), tmp_path / "out")
    errors = {e["id"]: e for e in listing.errors}
    assert sorted(it.id for it in listing.items) == ["ok", "quarter"]
    assert errors["fine"]["kind"] == "out_of_bounds" and "use a step of at least" in errors["fine"]["message"]
    far = dict(_sidecar())
    far["depth"] = {"unit": "M", "ref": [{"px": 0, "depth": 0.0}, {"px": 1, "depth": 1000.0}]}
    write_tiff(src / "far.tif", scan())
    (src / "far.json").write_text(json.dumps(far))  # in bounds, but 255 columns on it is 255,000 m
    errors = {e["id"]: e for e in list_inputs(str(src), tmp_path / "out").errors}
    assert errors["far"]["kind"] == "out_of_bounds" and "beyond" in errors["far"]["message"]
    assert errors["deep"]["kind"] == "bad_sidecar" and "within" in errors["deep"]["message"]
    assert errors["huge_value"]["kind"] == "bad_sidecar"


def test_build_output_refuses_an_unbounded_grid():
    from veernet_ray.las.export import depth_grid
    from veernet_ray.las.sidecar import Sidecar

    axis = Sidecar.from_dict(_sidecar(step=1e-4)).depth
    with pytest.raises(ValueError, match="LAS rows"):
        depth_grid(axis, 256)
    lo, step, n = depth_grid(Sidecar.from_dict(_sidecar()).depth, 256)
    assert (lo, n) == (1000.0, 256) and step == pytest.approx(0.1)


def test_pixel_budget_refuses_a_decompression_bomb_from_its_header(tmp_path):
    import tifffile

    from veernet_ray.infer.listing import MAX_PIXELS

    bomb = np.zeros((4000, 50_000), bool)  # 200 M px in a ~50 KB file
    tifffile.imwrite(tmp_path / "bomb.tif", bomb, compression="zlib")
    assert (tmp_path / "bomb.tif").stat().st_size < 300_000
    listing = list_inputs(str(tmp_path / "bomb.tif"), tmp_path / "out")
    assert [e["kind"] for e in listing.errors] == ["too_large"] and not listing.items
    assert 4000 * 50_000 > MAX_PIXELS >= 4096 * 12_800  # the whitepaper's widest log still fits


def test_blank_check_is_exact_without_float64_copies():
    from veernet_ray.infer.stages import _std_uint8

    img = np.random.default_rng(0).integers(0, 256, (700, 513)).astype(np.uint8)
    assert _std_uint8(img) == pytest.approx(float(img.std()), rel=1e-9)


# ---------------------------------------------------------- 7. multi-page
def test_multipage_tiff_uses_its_first_page(tmp_path):
    import tifffile

    from veernet_ray.io import read_header, read_image

    pages = np.stack([scan(), np.full((64, 256), 255, np.uint8), np.zeros((64, 256), np.uint8)])
    # three same-shaped pages in one series (a scanner's multi-page file), not an RGB image
    tifffile.imwrite(tmp_path / "multi.tif", pages, photometric="minisblack")
    assert (read_header(tmp_path / "multi.tif").height, read_header(tmp_path / "multi.tif").width) == (64, 256)
    np.testing.assert_array_equal(read_image(tmp_path / "multi.tif"), scan())


# ------------------------------------------------ 5. resume and the model
def test_resume_skips_only_outputs_of_the_same_model_and_options(tmp_path):
    from veernet_ray.infer.listing import qc_record_path

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a", "b", "c"):
        write_tiff(src / f"{name}.tif", scan())
    first = list_inputs(str(src), out, run_key="model-1", checkpoint_hash="h1")
    assert len(first.items) == 3 and not first.complete
    out.mkdir()
    qc_record_path(out, "a").parent.mkdir(parents=True)
    for it in first.items:  # what write_row leaves behind: the LAS, then the record
        Path(it.las_out).write_text("las")
        qc_record_path(out, it.id).write_text(json.dumps({"ckpt": "h1", "fingerprint": it.fingerprint, "rows": []}))
    qc_record_path(out, "c").write_text("[]")  # a record of an older version: no fingerprint, redone
    again = list_inputs(str(src), out, run_key="model-1", checkpoint_hash="h1")
    assert sorted(it.id for it in again.complete) == ["a", "b"] and [it.id for it in again.items] == ["c"]
    other = list_inputs(str(src), out, run_key="model-2", checkpoint_hash="h2")
    assert not other.complete and other.other_model == 3
    options = list_inputs(str(src), out, run_key="model-1 other thresholds", checkpoint_hash="h1")
    assert not options.complete and options.other_options == 2 and options.other_model == 1
    assert len(list_inputs(str(src), out, run_key="model-1", checkpoint_hash="h1", overwrite=True).items) == 3
    # a changed sidecar is another calibration
    (src / "a.json").write_text(json.dumps(_sidecar()))
    assert "a" not in [it.id for it in list_inputs(str(src), out, run_key="model-1", checkpoint_hash="h1").complete]


def test_run_key_covers_what_changes_the_las():
    from veernet_ray.infer.pipeline import InferOptions, run_key

    base = InferOptions(input="i", output="o")
    assert run_key(base, "h1") == run_key(InferOptions(input="i", output="o", batch_size=2), "h1")
    assert run_key(base, "h1") != run_key(base, "h2")
    other = 0.5 if base.min_coverage != 0.5 else 0.6  # a threshold other than the default
    assert run_key(base, "h1") != run_key(InferOptions(input="i", output="o", min_coverage=other), "h1")


# --------------------------------------------- 7. checkpoint refusal advice
def test_bad_checkpoint_error_never_suggests_weights_only_false(tmp_path):
    import collections

    import torch

    from veernet_ray.model.checkpoint import load_payload

    torch.save({"model": {}, "x": collections.OrderedDict(a=Path("/etc"))}, tmp_path / "objects.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint" * 8)
    for name, reason in (("objects.pt", "Python objects"), ("garbage.pt", "unreadable")):
        with pytest.raises(ValueError) as info:
            load_payload(tmp_path / name)
        msg = str(info.value)
        assert reason in msg and "weights_only" not in msg and "\n" not in msg, msg


# ------------------------------------------------------ 2. cluster exposure
def test_cluster_yaml_binds_to_loopback_and_requires_a_token():
    import re
    import tomllib

    import yaml

    root = Path(__file__).resolve().parent.parent
    text = (root / "cluster.yaml").read_text()
    cfg = yaml.safe_load(text)
    head = " ".join(cfg["head_start_ray_commands"])
    workers = " ".join(cfg["worker_start_ray_commands"])
    assert "0.0.0.0" not in text
    assert "--dashboard-host=127.0.0.1" in head and re.search(r"mlflow server --host 127\.0\.0\.1", head)
    for cmds in (head, workers):
        assert "RAY_AUTH_MODE=token" in cmds and "ray start" in cmds
    assert any("auth_token" in k for k in cfg["file_mounts"])
    assert "ray dashboard cluster.yaml" in text and "ssh -N -L" in text  # how to reach them
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    ray_dep = next(d for d in deps if d.startswith("ray["))
    low = tuple(int(x) for x in re.search(r">=(\d+)\.(\d+)", ray_dep).groups())
    assert low >= (2, 52)  # the first Ray with token authentication
    readme = (root / "README.md").read_text()
    assert "RAY_AUTH_MODE=token" in readme and "ray dashboard cluster.yaml" in readme


# ------------------------------------------------------------------ fuzz
def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        op = int(rng.integers(0, 5))
        at = int(rng.integers(0, max(1, len(b))))
        if op == 0 and b:  # flip bytes
            b[at] ^= int(rng.integers(1, 256))
        elif op == 1:  # truncate
            b = b[: at]
        elif op == 2:  # insert junk
            b[at:at] = rng.integers(0, 256, int(rng.integers(1, 16))).astype(np.uint8).tobytes()
        elif op == 3 and len(b) > 8:  # a huge 32-bit number in the first bytes (TIFF offsets, sizes)
            k = int(rng.integers(0, min(64, len(b) - 4)))
            b[k : k + 4] = int(rng.integers(0, 2**32)).to_bytes(4, "little")
        else:  # duplicate a chunk
            b += b[at : at + int(rng.integers(1, 64))]
    return bytes(b)


def make_fuzz_inputs(tmp_path: Path, n: int = 200) -> Path:
    """`tmp_path/in`: n seeded random mutations of a small valid TIFF (every 10th left intact), half
    with a sidecar (every 3rd of those intact). Also writes `tmp_path/valid.tif`. Returns the folder."""
    rng = np.random.default_rng(14)
    src = tmp_path / "in"
    src.mkdir()
    write_tiff(tmp_path / "valid.tif", scan(64, 128))  # small: 200 of them run through every stage
    tif = (tmp_path / "valid.tif").read_bytes()
    side = json.dumps(_sidecar()).encode()
    for i in range(n):
        (src / f"f{i:03d}.tif").write_bytes(_mutate(tif, rng) if i % 10 else tif)
        if i % 2:
            (src / f"f{i:03d}.json").write_bytes(_mutate(side, rng) if i % 3 else side)
    return src


def test_fuzzed_tiffs_and_sidecars_never_stop_the_job_or_escape(tmp_path):
    """200 random mutations of a valid TIFF and sidecar run through every stage of the job."""
    from veernet_ray.infer.cli import tiny_checkpoint
    from veernet_ray.infer.stages import ModelStage, _objects, decode_row, write_row

    src, out = make_fuzz_inputs(tmp_path), tmp_path / "out"
    ckpt = tiny_checkpoint(tmp_path / "model")
    before = {p for p in tmp_path.rglob("*") if out not in p.parents}

    import torch

    listing = list_inputs(str(src), out)
    threads = torch.get_num_threads()
    # one torch thread: 8x faster on 2 busy cores; the stage sets it process-wide, restored below
    stage = ModelStage(ckpt.read_bytes(), batch_size=4, num_threads=1)
    outcomes = {e["path"]: e["kind"] for e in listing.errors}
    for k in range(0, len(listing.items), 4):
        rows = [decode_row(it.row()) for it in listing.items[k : k + 4]]
        batch = {key: np.array([r[key] for r in rows], dtype=object) for key in rows[0] if key not in ("image", "probs")}
        batch["image"] = _objects([r["image"] for r in rows])
        res = stage(batch)
        for j, row in enumerate(rows):
            row.update(status=res["status"][j], kind=res["kind"][j], message=res["message"][j], probs=res["probs"][j])
            done = write_row(row, provenance={"MODEL": "tiny", "CKPT": "fuzz"}, output=str(out))
            assert done["status"] in ("done", "error", "skipped")
            outcomes[done["path"]] = done["status"] if done["status"] == "done" else done["kind"]
    torch.set_num_threads(threads)
    assert len(outcomes) == 200  # every input accounted for, none crashed a stage
    assert sum(v == "done" for v in outcomes.values()) >= 10  # the unmutated tenth (half lack a sidecar) at least
    after = {p for p in tmp_path.rglob("*") if out not in p.parents and p != out}
    assert after == before, sorted(map(str, after ^ before))[:5]  # nothing written outside OUT
    assert all(p.parent == out.resolve() for p in out.resolve().glob("*.las"))


# ------------------------------------------------ 7. typed inference options
def test_infer_options_are_typed_validated_and_frozen():
    import dataclasses

    from veernet_ray.infer.pipeline import InferError, InferOptions

    opts = InferOptions(input="in", output="out", decode_cpus=1)
    assert opts.decode_cpus == 1.0 and isinstance(opts.decode_cpus, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.batch_size = 2
    for bad, words in ((dict(batch_size="8"), "--batch-size: expected an integer"),
                       (dict(min_coverage=2.0), "--min-coverage"), (dict(overlays="some"), "--overlays"),
                       (dict(tracking="yes"), "--tracking: expected true or false"),
                       (dict(max_pixels=10), "--max-pixels")):
        with pytest.raises(InferError, match=words):
            InferOptions(input="in", output="out", **bad)
    assert opts.replace(batch_size=2).batch_size == 2
    with pytest.raises(InferError):
        opts.replace(batch_size=0)


# ------------------------------------------------------------ 7. symlinks
def test_symlinks_leaving_the_input_folder_are_refused_unless_followed(tmp_path):
    src, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    src.mkdir()
    elsewhere.mkdir()
    write_tiff(src / "inside.tif", scan())
    write_tiff(elsewhere / "secret.tif", scan())
    (src / "link_in.tif").symlink_to(src / "inside.tif")  # stays inside: fine
    (src / "link_out.tif").symlink_to(elsewhere / "secret.tif")
    write_tiff(src / "side.tif", scan())
    (elsewhere / "side.json").write_text(json.dumps(_sidecar()))
    (src / "side.json").symlink_to(elsewhere / "side.json")  # a sidecar link out: refused too
    listing = list_inputs(str(src), tmp_path / "out")
    assert sorted(it.id for it in listing.items) == ["inside", "link_in"]
    assert sorted((e["id"], e["kind"]) for e in listing.errors) == [("link_out", "symlink_outside_input"),
                                                                     ("side", "symlink_outside_input")]
    assert "--follow-symlinks" in listing.errors[0]["message"]
    followed = list_inputs(str(src), tmp_path / "out", follow_symlinks=True)
    assert sorted(it.id for it in followed.items) == ["inside", "link_in", "link_out", "side"]


def test_tiff_photometric_is_honoured_1bit_miniswhite_palette_and_4bit(tmp_path):
    """Archive scans are mostly 1-bit CCITT TIFFs stored min-is-white, where 0 is white; palette
    TIFFs store colour-map indices; 4-bit grey runs 0..15. Each reads as the same gray page: white
    paper, black ink."""
    import tifffile

    from veernet_ray.io import read_image

    ink = np.zeros((24, 40), bool)
    ink[8:12, :] = True
    want = np.where(ink, 0, 255).astype(np.uint8)

    tifffile.imwrite(tmp_path / "mw.tif", ink, photometric="miniswhite")  # 1 = ink = black
    from PIL import Image, TiffImagePlugin

    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[262] = 0  # PhotometricInterpretation = MINISWHITE, as fax-compressed archive scans are
    Image.fromarray(~ink).convert("1").save(tmp_path / "mw_g4.tif", compression="group4", tiffinfo=info)
    tifffile.imwrite(tmp_path / "mb.tif", ~ink, photometric="minisblack")  # 1 = paper = white
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, 0], cmap[:, 1] = 65535, 0  # index 0 white, 1 black
    tifffile.imwrite(tmp_path / "pal.tif", ink.astype(np.uint8), photometric="palette", colormap=cmap)
    four = np.where(ink, 0, 15).astype(np.uint8)
    tifffile.imwrite(tmp_path / "g4bit.tif", four, photometric="minisblack", bitspersample=4)
    for name in ("mw.tif", "mw_g4.tif", "mb.tif", "pal.tif", "g4bit.tif"):
        got = read_image(tmp_path / name)
        assert got.dtype == np.uint8 and np.array_equal(got, want), (name, np.unique(got))
