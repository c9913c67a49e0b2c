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
