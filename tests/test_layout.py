"""Sheet layout: pure maths on hand-made arrays, the generator's truth, `veernet infer --layout sheet` end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import BIN, ROOT, _stop_cluster, free_port, run
from veernet_ray.layout.calibrate import fit_depth, guess_unit, parse_value
from veernet_ray.layout.detect import (find_layout, find_rules, ink_mask, label_boxes, pick_borders, ruled_blocks,
                                       trim_rules)
from veernet_ray.layout.digits import read_digits, split_glyphs, split_touching
from veernet_ray.layout.sheet import ScalesError, analyse_sheet, check_scales, read_labels, to_portrait, trailing_zeros
from veernet_ray.las.sidecar import Sidecar
from veernet_ray.synth.sheet import SheetConfig, SheetTruth, render_sheet, text_patch, write_sheet

SMALL = SheetConfig(width=(820, 880), height=(1900, 2100), p_second_section=0.0)  # >= 800 across: auto sees a sheet


# ------------------------------------------------------------------ depth fit
def test_fit_recovers_an_exact_line_and_rejects_a_misread():
    rows = np.array([100.0, 300, 500, 700, 900])
    values = 1000 + 0.5 * rows  # 1050, 1150, ... every 100 ft
    values[2] = 1450.0  # "1250" misread as "1450"
    fit = fit_depth(rows, values, np.array([1, 1, 0.6, 1, 1.0]))
    assert fit.ok and not fit.flagged
    assert fit.a == pytest.approx(1000.0) and fit.b == pytest.approx(0.5)
    assert fit.used == (True, True, False, True, True)
    assert "off the fit" in fit.label_reasons[2]
    assert fit.interval == pytest.approx(100.0) and fit.max_abs == pytest.approx(0.0, abs=1e-9)


def test_fit_flags_a_confident_reading_that_disagrees():
    # a reader that turns every "4" into "21" draws a consistent wrong line; the one right label exposes it
    rows = np.array([100.0, 300, 500, 700])
    values = np.array([21300.0, 21400, 21500, 4600])
    fit = fit_depth(rows, values, np.array([0.9, 0.9, 0.9, 1.0]))
    assert fit.flagged and "disagree" in fit.reason


def test_fit_refuses_too_few_and_contradictory_labels():
    one = fit_depth(np.array([100.0, 200]), np.array([500.0, np.nan]))
    assert not one.ok and one.a is None and "fewer than two readable" in one.reason
    with pytest.raises(ValueError, match="no depth fit"):
        one.depth_at(10)
    chaos = fit_depth(np.array([100.0, 200, 300, 400, 500]), np.array([900.0, 300, 1700, 200, 1100]))
    assert not chaos.ok and "contradict" in chaos.reason
    upward = fit_depth(np.array([100.0, 200, 300]), np.array([900.0, 800, 700]))
    assert not upward.ok and "contradict" in upward.reason


def test_two_labels_give_a_flagged_unverified_fit():
    fit = fit_depth(np.array([100.0, 600]), np.array([1000.0, 1100]))
    assert fit.ok and fit.flagged and "unverified" in fit.reason
    assert fit.depth_at(350) == pytest.approx(1050.0)


def test_units_and_values():
    assert parse_value("2650") == 2650.0 and parse_value("26S0") is None and parse_value("") is None
    assert guess_unit([2600.0], "M") == ("M", "header")
    assert guess_unit([2600.0], None, "M") == ("M", "user")
    assert guess_unit([2600.0])[0] == "FT"


# ------------------------------------------------------------------ detection
def _hand_sheet() -> np.ndarray:
    """600 x 1200 portrait: a header box, borders at x=20, 200, 260, 580 (5 px), thin grid in the tracks,
    two printed labels and edge ticks in the depth column (200..260)."""
    img = np.full((1200, 600), 235, np.uint8)
    cv2.rectangle(img, (20, 10), (580, 180), 0, 2)
    cv2.putText(img, "WELL 7  DEPTHS IN FEET", (40, 90), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    for x in (20, 200, 260, 580):
        img[200:1150, x : x + 5] = 0
    img[200:205, 20:585] = 0
    img[1145:1150, 20:585] = 0
    for x in range(40, 200, 30):
        img[205:1145, x] = 150  # grid: thin and lighter
    for y, txt in ((400, "1100"), (800, "1200")):
        img[y, 206:214] = 0  # ticks touch the column edges
        img[y, 252:260] = 0
        patch = text_patch(txt, 14, cv2.FONT_HERSHEY_SIMPLEX, 1)
        ph, pw = patch.shape
        y0, x0 = y - ph // 2, 233 - pw // 2
        img[y0 : y0 + ph, x0 : x0 + pw] = np.minimum(img[y0 : y0 + ph, x0 : x0 + pw], 255 - patch)
    return img


def test_rules_borders_sections_and_depth_column_on_a_hand_made_sheet():
    img = _hand_sheet()
    ink = ink_mask(img)
    rules, _ = find_rules(ruled_blocks(ink))
    borders = pick_borders(rules, min_gap=20)
    assert [(b.x0, b.x1) for b in borders] == [(20, 25), (200, 205), (260, 265), (580, 585)]
    lay = find_layout(img)
    assert lay.sections == ((205, 1144),)  # inside the top and bottom rules
    assert lay.header_end == 205
    assert lay.tracks == ((25, 200), (265, 580)) and lay.depth_column == (205, 260)
    rows = [b.row for b in lay.labels]
    assert len(rows) == 2 and all(abs(r - y) <= 1 for r, y in zip(rows, (400, 800)))


def test_label_boxes_drop_ticks_and_specks():
    ink = np.zeros((300, 60), bool)
    ink[100, 0:10] = True  # a tick from the left edge
    ink[50, 30] = True  # a speck
    ink[200:214, 20:28] = True  # a "digit"
    ink[200:214, 30:38] = True  # its neighbour
    boxes = label_boxes(ink, (0, 60), (0, 299))
    assert len(boxes) == 1 and (boxes[0].x0, boxes[0].x1, boxes[0].y0, boxes[0].y1) == (20, 38, 200, 214)
    assert not boxes[0].rotated


def test_a_blank_page_has_no_layout():
    lay = find_layout(np.full((800, 400), 240, np.uint8))
    assert lay.tracks == () and lay.depth_column is None and lay.notes


def test_landscape_sheets_are_turned_to_portrait():
    img = np.zeros((100, 400), np.uint8)
    img[0, 0] = 7  # top-left of a landscape sheet = the shallow end: it becomes the top-right
    out, turned = to_portrait(img)
    assert turned and out.shape == (400, 100) and out[0, -1] == 7


# ------------------------------------------------------------------ digits
def test_the_digit_reader_reads_a_face_it_was_not_drilled_on():
    from PIL import Image, ImageDraw, ImageFont
    import matplotlib

    face = Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSerif-Italic.ttf"  # not among the training faces
    font = ImageFont.truetype(str(face), 30)
    im = Image.new("L", (120, 44), 255)
    ImageDraw.Draw(im).text((6, 4), "3750", fill=0, font=font)
    r = read_digits(np.asarray(im))
    assert r.text == "3750" and r.confidence > 0.5


def test_touching_digits_are_cut_at_the_gap():
    g = np.zeros((20, 26), bool)
    g[:, 2:10] = True
    g[:, 16:24] = True
    g[18:20, 10:16] = True  # a bridge at the foot
    parts = split_touching(g, 20, 2)
    assert [p.shape[1] for p in parts] == [13, 13] or sum(p.shape[1] for p in parts) == 26
    assert len(parts) == 2 and all(p.any() for p in parts)


def _printed(text: str, size: int = 30) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont
    import matplotlib

    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), size)
    im = Image.new("L", (size * len(text), int(size * 1.5)), 255)
    ImageDraw.Draw(im).text((6, 4), text, fill=0, font=font)
    return np.asarray(im)


def test_a_thousands_comma_is_not_a_glyph():
    glyphs = split_glyphs(_printed("10,000") < 128)
    assert len(glyphs) == 5
    assert read_digits(_printed("10,000")).text == "10000"


def test_a_lone_rotated_label_is_turned_the_way_that_ends_in_zeros():
    label = np.rot90(_printed("1000"), -1)  # printed top to bottom; upside down it reads "0001"
    sheet = np.full((label.shape[0] + 20, label.shape[1] + 20), 255, np.uint8)
    sheet[10:-10, 10:-10] = label
    ys, xs = np.nonzero(sheet < 128)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, True)
    assert trailing_zeros("1000") == 3 and trailing_zeros("0001") == 0 and trailing_zeros("10a0") == 0
    assert read_labels(sheet, [box], read_digits)[0][0] == "1000"


def test_a_tick_ending_beside_a_label_is_not_read_as_a_digit():
    # real sheets (an MWD log at 115 dpi) draw the depth line as a tick from each border that stops a
    # pixel or two short of the label: "-3850-". The box excludes the ticks (they touch the column's
    # edges), but its PAD margin took the right tick's tip in, and the reader added a "1" to every
    # label: 38501, 39501, ... a self-consistent line ten times too steep, not flagged
    label = _printed("3850")
    ys, xs = np.nonzero(label < 128)
    label = label[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = label.shape
    sheet = np.full((h + 40, w + 60), 255, np.uint8)
    y0, x0 = 20, 30
    sheet[y0 : y0 + h, x0 : x0 + w] = label
    mid = y0 + h // 2
    sheet[mid - 2 : mid + 2, : x0 - 2] = 0  # left tick, 2 px short of the label
    sheet[mid - 2 : mid + 2, x0 + w + 1 :] = 0  # right tick, 1 px short of the label
    box = (x0, y0, x0 + w, y0 + h, False)
    seen = []

    def recording(crop):
        seen.append(crop.copy())
        return read_digits(crop)

    text = read_labels(sheet, [box], recording)[0][0]
    crop = seen[0]
    inner = np.zeros(crop.shape, bool)
    inner[2 : 2 + h, 2 : 2 + w] = True  # PAD = 2 on every side here
    assert crop.shape == (h + 4, w + 4)
    assert not (crop[~inner] < 128).any(), "ink of the ticks reached the reader"
    assert np.array_equal(crop[inner].reshape(h, w), label)  # the label itself is untouched
    assert text == "3850"


# ------------------------------------------------------------------ scales and sidecars
def test_scales_are_checked_with_a_message_that_names_the_field():
    good = {"tracks": [{"track": 1, "curves": [{"class_id": 1, "mnemonic": "GR", "unit": "GAPI", "left": 0,
                                                "right": 150}]}]}
    check_scales(good)
    bad = {"tracks": [{"track": 1, "curves": [{"class_id": 1, "mnemonic": "ILD", "scale": "log", "left": 0,
                                               "right": 2000}]}]}
    with pytest.raises(ScalesError, match=r"curves\[0\].left must be > 0 on a log scale"):
        check_scales(bad)
    with pytest.raises(ScalesError, match="tracks"):
        check_scales({"track": []})


def _ruled_sheet(w: int, h: int, log0: int, borders: list[tuple[int, int]], dcol: tuple[int, int],
                 rotated: bool = False, grid: int = 150) -> np.ndarray:
    """A log under a header: `borders` [(x0, x1), ...] drawn from `log0` down (rows log0..h-20), a
    rule along the log's top and bottom, a grid of 1 px lines at gray `grid` in the tracks, and a
    label every 300 rows in the depth column `dcol` (turned when `rotated`), with edge ticks."""
    img = np.full((h, w), 240, np.uint8)
    x_lo, x_hi = borders[0][0], borders[-1][1]
    for x in range(x_lo + 20, x_hi, 40):
        if not any(a - 3 <= x < b + 3 for a, b in borders) and not dcol[0] <= x < dcol[1]:
            img[log0 : h - 20, x] = grid
    cv2.putText(img, "WELL 7  DEPTHS IN FEET", (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    for x0, x1 in borders:
        img[log0 : h - 20, x0:x1] = 0
    img[log0 : log0 + 3, x_lo:x_hi] = 0
    img[h - 23 : h - 20, x_lo:x_hi] = 0
    for k, y in enumerate(range(log0 + 150, h - 80, 300)):
        img[y, dcol[0] : dcol[0] + 4] = 0
        img[y, dcol[1] - 4 : dcol[1]] = 0
        patch = text_patch(str(1000 + 100 * k), 12 if rotated else 14, cv2.FONT_HERSHEY_SIMPLEX, 1)
        patch = np.rot90(patch, 1) if rotated else patch
        ph, pw = patch.shape
        y0, x0 = y - ph // 2, (dcol[0] + dcol[1] - pw) // 2
        img[y0 : y0 + ph, x0 : x0 + pw] = np.minimum(img[y0 : y0 + ph, x0 : x0 + pw], 255 - patch)
    return img


def test_a_header_frame_running_the_whole_page_does_not_make_the_borders_short():
    # an MWD log (115 dpi): the left border is also the header box's edge and runs the whole page;
    # the other borders run under a header that takes 45% of it. Measured over the whole page they
    # cover too little (not even rules); over the log's own blocks they run all of it
    borders = [(2, 6), (300, 304), (360, 364), (700, 704)]
    img = _ruled_sheet(720, 3000, 1350, borders, (304, 360))
    img[0:1350, 2:6] = 0  # the frame line up the header
    img[0:3, 2:704] = 0
    img[1300:1303, 2:704] = 0
    lay = find_layout(img)
    assert [(b.x0, b.x1) for b in lay.borders] == borders
    assert lay.tracks == ((6, 300), (364, 700)) and lay.depth_column == (304, 360)
    assert abs(lay.header_end - 1353) <= 2 and len(lay.labels) >= 4


def test_a_table_over_a_third_of_the_page_is_not_taken_for_the_log():
    # pages joined in one image, framed: a ruled table runs over 35% of the rows. Where three lines
    # run together is not the log unless it is most of the ruled page; then cover is measured over
    # the whole page and the table's lines are too short to be rules
    img = np.full((3000, 600), 240, np.uint8)
    img[:, 10:14] = 0
    img[:, 586:590] = 0
    for x in (200, 300, 400):
        img[0:1050, x : x + 4] = 0
    lay = find_layout(img)
    assert not {200, 300, 400} & {b.x0 for b in lay.borders}


def test_3px_borders_are_found_on_a_sheet_ruled_no_heavier():
    # a 150-dpi colour log: 3 px borders, the grid gray (not ink); the sheet's heaviest rules are its
    # borders even though they are under MIN_BORDER_PX
    borders = [(40, 43), (400, 403), (460, 463), (900, 903)]
    lay = find_layout(_ruled_sheet(940, 2400, 400, borders, (403, 460)))
    assert [(b.x0, b.x1) for b in lay.borders] == borders
    assert lay.tracks == ((43, 400), (463, 900)) and lay.depth_column == (403, 460)
    # a sheet ruled in 1 px hairlines only has no border heavy enough to tell from a grid
    hair = [(40, 41), (400, 401), (460, 461), (900, 901)]
    assert find_layout(_ruled_sheet(940, 2400, 400, hair, (401, 460))).tracks == ()


def test_a_narrow_depth_column_keeps_its_borders():
    # depths printed turned in a column 22 px wide, narrower than MIN_TRACK_FRAC of the ruled width:
    # its two borders are not merged as "a border and an edge line beside it"
    borders = [(40, 45), (480, 485), (507, 512), (950, 955)]
    lay = find_layout(_ruled_sheet(990, 2400, 400, borders, (485, 507), rotated=True))
    assert [(b.x0, b.x1) for b in lay.borders] == borders
    assert lay.depth_column == (485, 507) and lay.tracks == ((45, 480), (512, 950))
    assert len(lay.labels) >= 4 and all(b.rotated for b in lay.labels)


def test_a_dark_track_does_not_trim_its_section_away():
    # a track printed black over half the sheet's width fills more than half of every row: only a row
    # that is (almost) solid ink across is a horizontal rule
    ink = np.zeros((1000, 400), bool)
    ink[100:103, 0:400] = True  # top rule
    ink[897:900, 0:400] = True  # bottom rule
    ink[100:900, 0:220] = True  # the dark track
    assert trim_rules(ink, (100, 899), (0, 400)) == (103, 896)


def test_grid_lines_as_heavy_as_the_borders_are_not_borders():
    # a 400-dpi scan draws its grid 3-4 px, as heavy as its borders: weight cannot tell them apart, but a
    # grid is regular and a border ends it (the depth column or the margin beyond is another spacing)
    borders = [(40, 44), (400, 404), (460, 464), (900, 904)]
    img = _ruled_sheet(940, 2400, 400, borders, (404, 460))
    for x in [*range(80, 400, 40), *range(500, 900, 40)]:
        img[400:2380, x : x + 4] = 0
    lay = find_layout(img)
    assert [(b.x0, b.x1) for b in lay.borders] == borders
    assert lay.tracks == ((44, 400), (464, 900)) and lay.depth_column == (404, 460)


def test_a_sheet_ruled_only_in_hairlines_has_its_borders_where_the_grid_breaks():
    # a 100-dpi print (compass): borders and grid all 1 px. No rule is heavy, but the grid divides
    # each track evenly, and the rules that break its period are the borders
    hair = [(40, 41), (400, 401), (460, 461), (900, 901)]
    img = _ruled_sheet(940, 2400, 400, hair, (401, 460), grid=240)
    for x in [*range(76, 400, 36), *range(504, 900, 44)]:
        img[400:2380, x] = 0
    lay = find_layout(img)
    assert [(b.x0, b.x1) for b in lay.borders] == hair
    assert lay.tracks == ((41, 400), (461, 900)) and lay.depth_column == (401, 460)
    # cropped at its left border, which is then on the scan's first column: the track's horizontal
    # grid runs up to it, so it is not paper to trim (`trim_to_paper`)
    img[400:2380:20, 41:400] = 0
    img[400:2380:20, 461:900] = 0
    lay = find_layout(img[:, 40:])
    assert lay.tracks == ((1, 360), (421, 860)) and lay.depth_column == (361, 420)


def _askew(image: np.ndarray, drift: int) -> np.ndarray:
    """The sheet fed askew: row r moved right by drift x r / (height - 1) px, paper where it left."""
    h, w = image.shape
    out = np.full((h, w + drift), 255, np.uint8)
    for r in range(h):
        o = int(round(drift * r / (h - 1)))
        out[r, o : o + w] = image[r]
    return out


def test_rules_that_drift_along_an_askew_scan_are_found(sheets):
    # a long scan fed askew (BXG57: 25 px over 11,000 rows at 400 dpi): no column is ruled along the
    # log, so straight rules find no track. The second try lets a rule drift: each track is the
    # columns inside its borders' envelopes, the depth fit is as exact as on the straight sheet, and
    # the note flags the sheet
    s = sheets[2]
    t = s.truth
    img = _askew(s.image, 12)
    a = analyse_sheet(img, reader="digits", read_header=False)
    assert len(a.layout.tracks) == len(t.tracks)
    for (f0, f1), (t0, t1) in zip(a.layout.tracks, t.tracks):
        assert t0 + 6 <= f0 <= t0 + 12 + 6 and t1 - 6 <= f1 <= t1 + 6  # inside the track at every row
    assert a.fits[0].ok and not a.fits[0].flagged
    rows = np.array([lab.row for lab in t.labels])
    assert np.max(np.abs(a.fits[0].depth_at(rows) - t.sections[0].depth_at(rows))) < 0.1 * t.sections[0].interval
    assert a.flagged and "drift" in a.reasons[0]
    # three pages joined: a header page (a table of horizontal rules) above the askew log, and the
    # scanner's edge line down the whole image. A track's curve running along a grid line widens it
    # in many blocks: a rule's weight is its commonest width, or that grid line reads as a border
    page = np.full((int(0.6 * img.shape[0]), img.shape[1]), 255, np.uint8)
    page[400 : page.shape[0] - 400 : 90] = 0
    joined = np.vstack([page, img])
    joined[:, -3:] = 0
    lay = find_layout(joined)
    assert len(lay.tracks) == len(t.tracks) and lay.depth_column is not None
    assert abs(lay.sections[0][0] - (page.shape[0] + t.sections[0].row0)) <= 6


def _cut_by_the_scan(header_table: list[int], table_rows: tuple[int, int], frame: bool) -> np.ndarray:
    """A log cropped past its right border, which is too faint to be a rule (1 px, grey); the
    scanner's edge line down the whole image; a table of vertical lines in the header, and
    optionally a frame line down the header page that is also the log's left border."""
    img = _ruled_sheet(720, 3000, 1350, [(40, 44), (300, 304), (360, 364), (700, 704)], (304, 360))
    img[:, 700:704] = 240
    img[1350:2980, 701] = 150  # the faint border
    img[:, 716:720] = 0  # the edge line
    if frame:
        img[0:1350, 40:44] = 0
    for x in header_table:
        img[table_rows[0] : table_rows[1], x : x + 3] = 0
    return img


def test_a_scan_edge_line_does_not_make_the_log_run_up_the_header():
    # A table in the header runs three lines together: its blocks count with the log's, so the edge
    # line (the whole page) covers more than the borders; with the frame it is two of four borders
    # "running" all down the header
    lay = find_layout(_cut_by_the_scan([120, 200, 450, 600], (300, 700), frame=True))
    assert [(b.x0, b.x1) for b in lay.borders] == [(40, 44), (300, 304), (360, 364), (716, 720)]
    assert lay.depth_column == (304, 360)
    assert len(lay.sections) == 1 and abs(lay.sections[0][0] - 1353) <= 2
    # without the frame, a taller table: its blocks are a third of the "log" blocks, so the borders
    # cover 0.65 of them, and the edge line all: it does not set the cover a border needs
    lay = find_layout(_cut_by_the_scan([120, 200, 450], (100, 1000), frame=False))
    assert lay.tracks[0] == (44, 300) and lay.depth_column == (304, 360)


def test_a_track_cut_by_the_scan_ends_where_its_lines_end():
    # the edge line is not the track's border: the paper between the faint border and the scan's edge
    # is not track (BXG57's right track ran on 150 px of margin)
    lay = find_layout(_cut_by_the_scan([], (0, 0), frame=False))
    assert lay.tracks == ((44, 300), (364, 702))


def test_a_mid_track_line_as_heavy_as_the_borders_does_not_split_its_track(sheets):
    # an MWD log (archer): each linear track has a grey 10-division grid and a mid line as heavy as
    # the borders. The mid line is at the middle of its neighbours' interval and the grid mirrors
    # about it; a true border has another track's grid on its other side
    s = sheets[2]
    t = s.truth
    img = s.image.copy()
    r0, r1 = t.sections[0].row0, t.sections[0].row1
    x0, x1 = t.tracks[1]
    weight = next(b.width for b in find_layout(s.image).borders)
    img[r0 : r1 + 1, x0:x1] = 255
    for k in range(1, 10):
        x = x0 + round(k * (x1 - x0) / 10)
        img[r0 : r1 + 1, x] = 190
    mid = round((x0 + x1 - weight) / 2)
    img[r0 : r1 + 1, mid : mid + weight] = 0
    rows = np.arange(r0, r1 + 1)
    xs = ((x0 + x1) / 2 + 0.3 * (x1 - x0) * np.sin(rows / 37.0)).astype(int)  # a curve crossing the mid line
    img[rows, xs] = 0
    img[rows, xs + 1] = 0
    lay = find_layout(img)
    assert len(lay.tracks) == len(t.tracks)
    for (f0, f1), (t0, t1) in zip(lay.tracks, t.tracks):
        assert abs(f0 - t0) <= 6 and abs(f1 - t1) <= 6


# ------------------------------------------------------------------ generated sheets, end to end on a CPU
@pytest.fixture(scope="module")
def sheets():
    return [render_sheet(11, i, SMALL) for i in range(3)]


def test_veernet_synth_sheets_writes_scans_with_truth(tmp_path):
    from veernet_ray.synth.cli import main

    assert main([str(tmp_path / "s"), "--sheets", "--n", "1", "--seed", "4"]) == 0
    truth = SheetTruth.from_dict(json.loads((tmp_path / "s" / "sheet-4-0000.truth.json").read_text()))
    from veernet_ray.io import read_image

    assert read_image(tmp_path / "s" / "sheet-4-0000.tif").shape == (truth.height, truth.width)


def test_generated_truth_is_self_consistent(sheets):
    for s in sheets:
        t = s.truth
        assert s.image.shape == (t.height, t.width)
        x0, x1 = t.depth_column
        for lab in t.labels:
            sec = t.sections[lab.section]
            assert sec.depth_at(lab.row) == pytest.approx(lab.value, abs=1e-6)
            assert x0 <= lab.box[0] and lab.box[2] <= x1
        assert SheetTruth.from_dict(json.loads(json.dumps(t.to_dict()))) == t


def test_layout_finds_the_truth_on_generated_sheets(sheets):
    for s in sheets:
        t = s.truth
        a = analyse_sheet(s.image, read_header=False)
        assert len(a.layout.tracks) == len(t.tracks)
        for (f0, f1), (t0, t1) in zip(a.layout.tracks, t.tracks):
            assert abs(f0 - t0) <= 6 and abs(f1 - t1) <= 6
        sec = t.sections[0]
        fit = a.fits[0]
        rows = np.array([lab.row for lab in t.labels])
        if fit.ok and not fit.flagged:  # never silently wrong: unflagged fits are within 0.25% of the span
            err = np.max(np.abs(fit.depth_at(rows) - sec.depth_at(rows)))
            assert err < 0.0025 * sec.pitch * (sec.row1 - sec.row0)
        assert a.is_sheet


def test_landscape_and_colour_scans_of_a_sheet_give_the_same_layout(sheets):
    s = sheets[1]
    base = analyse_sheet(s.image, reader="digits", read_header=False)
    landscape = np.ascontiguousarray(np.rot90(s.image, 1))  # depth along the width, shallow end left
    turned = analyse_sheet(landscape, reader="digits", read_header=False)
    assert turned.turned and turned.layout.tracks == base.layout.tracks
    assert turned.fits[0].a == pytest.approx(base.fits[0].a) and turned.fits[0].b == pytest.approx(base.fits[0].b)
    from veernet_ray.io import to_gray_uint8

    tint = np.stack([s.image, np.clip(s.image.astype(int) + 20, 0, 255), s.image], axis=-1).astype(np.uint8)
    colour = analyse_sheet(to_gray_uint8(tint), reader="digits", read_header=False)
    assert colour.layout.tracks == base.layout.tracks and colour.fits[0].ok


def test_track_sidecars_follow_the_contract(sheets):
    s = sheets[0]
    a = analyse_sheet(s.image, read_header=False)
    scales = {"tracks": [{"track": 1, "curves": [{"class_id": 1, "mnemonic": "GR", "unit": "GAPI", "left": 0,
                                                  "right": 150}]}]}
    assert a.fits[0].ok
    side = Sidecar.from_dict(a.track_sidecar(0, 0, scales))
    r0, r1 = a.layout.sections[0]
    c0, c1 = a.layout.tracks[0]
    assert side.orientation == "depth_along_height" and side.depth.unit == a.unit
    assert side.depth.depth_at(0) == pytest.approx(a.fits[0].depth_at(r0))
    gr = side.curve(1)
    assert (gr.mnemonic, gr.unit) == ("GR", "GAPI")
    canon = side.canonical((r1 - r0 + 1, c1 - c0))
    # the track's left edge (column 0) is the canonical bottom row, and reads the left value
    assert canon.curve(1).value_at(c1 - c0 - 1) == pytest.approx(0.0)
    assert side.curve(2).unit == "NORM"  # not in the scales file: normalised


# ------------------------------------------------------------------ the layout stage (no Ray needed to call it)
def _listing_row(path: Path, tmp: Path) -> dict:
    from veernet_ray.infer.listing import list_inputs

    items = list_inputs(str(path), tmp / "out").items
    assert len(items) == 1
    return items[0].row()


def test_prepare_rows_splits_a_sheet_into_track_rows_and_keeps_strips_whole(tmp_path, sheets):
    from veernet_ray.io import write_tiff
    from veernet_ray.layout.stages import prepare_rows

    write_sheet(sheets[0], tmp_path / "in", "s0")
    out = str(tmp_path / "out")
    rows = prepare_rows(_listing_row(tmp_path / "in" / "s0.tif", tmp_path), mode="auto", output=out,
                        reader="digits")
    t = sheets[0].truth
    assert len(rows) == len(t.tracks) * len(t.sections)
    assert {r["sheet_id"] for r in rows} == {"s0"} and all(r["status"] == "ok" for r in rows)
    r = rows[0]
    assert r["image"].shape == (r["height"], r["width"]) and r["orientation"] == "depth_along_height"
    rec = json.loads((tmp_path / "out" / "layout" / "s0.json").read_text())
    assert rec["is_sheet"] and len(rec["tracks"]) == len(rows) and rec["labels"]
    assert {"row", "text", "value", "used", "reason"} <= set(rec["labels"][0])
    # a single-track strip (the whitepaper's 480-640 px across) is never sent through layout
    strip = np.full((120, 900), 230, np.uint8)
    strip[60, :] = 0
    write_tiff(tmp_path / "strip" / "st.tif", strip)
    [srow] = prepare_rows(_listing_row(tmp_path / "strip" / "st.tif", tmp_path), mode="auto", output=out)
    assert srow["sheet_id"] == "" and srow["status"] == "ok" and srow["image"].shape == (120, 900)


def test_prepare_rows_reports_a_sheet_without_tracks(tmp_path):
    from veernet_ray.io import write_tiff
    from veernet_ray.layout.stages import prepare_rows

    page = np.full((2000, 900), 235, np.uint8)
    cv2.putText(page, "MEMO", (100, 300), cv2.FONT_HERSHEY_SIMPLEX, 3, 0, 5)
    write_tiff(tmp_path / "in" / "memo.tif", page)
    [row] = prepare_rows(_listing_row(tmp_path / "in" / "memo.tif", tmp_path), mode="sheet",
                         output=str(tmp_path / "out"), reader="digits")
    assert row["status"] == "error" and row["kind"] == "no_track"
    assert "--layout strip" in row["message"]
    assert (tmp_path / "out" / "layout" / "memo.png").is_file()


def test_a_sheet_overlay_draws_each_trace_where_its_ink_is():
    """Traces live in the rows of a track's canonical strip (`rot90(crop, 1)`, as `prepare_rows` cuts it);
    the sheet overlay must put them back on the curve's own pixels of the portrait sheet."""
    from veernet_ray.layout.stages import TRACE_RGB, draw_sheet_traces

    sheet = np.full((900, 700), 235, np.uint8)
    r0, r1, c0, c1 = 100, 799, 200, 520  # a track: rows 100..799, columns 200..519
    depth = np.arange(r0, r1 + 1)
    col = np.round(360 + 120 * np.sin(depth / 70.0)).astype(int)  # the curve, drawn down the page
    sheet[depth, col] = 20
    canon = np.rot90(sheet[r0 : r1 + 1, c0:c1], 1)  # value axis down the rows, depth along the columns
    page = canon.argmin(axis=0).astype(np.float64)  # the darkest row of each column: the curve
    page[:50] = np.nan  # no value there
    rgb = draw_sheet_traces(sheet, [((r0, r1, c0, c1), {1: page})])
    assert rgb.shape == (900, 700, 3)
    red = np.all(rgb == TRACE_RGB[1], axis=2)
    assert red[depth[50:], col[50:]].all()  # on the curve's own ink wherever it has a value
    assert not red[depth[:40], col[:40]].any()  # and nowhere where it has none
    assert not red[:, :c0 - 2].any() and not red[:, c1 + 1:].any()  # inside its track
    assert np.all(rgb[r0 + 5, c0] == (0, 170, 0))  # the track's box


# ------------------------------------------------------------------ veernet infer --layout sheet
@pytest.fixture(scope="module")
def ray_gcs(env_base):
    """A bare Ray head on 127.0.0.1 (no dashboard: this test drives it directly, not through
    `ray job submit`), stopped by its own session folder like conftest's `ray_head`."""
    import os

    ray_tmp = Path(f"/tmp/vl{os.getpid()}")
    try:
        # Ray waits a fixed 30 s for its raylet; a loaded 2-core machine can miss that, so try 3 times
        for _ in range(3):
            port = free_port()
            out = run([str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                       "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={ray_tmp}",
                       "--disable-usage-stats"], env=env_base, timeout=180)
            if out.returncode == 0:
                break
            _stop_cluster(ray_tmp)
        else:
            pytest.fail(f"ray start failed 3 times:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        _stop_cluster(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_infer_layout_sheet_end_to_end(ray_gcs, env_base, tmp_path):
    from veernet_ray.infer.cli import tiny_checkpoint
    from veernet_ray.las.lasfile import read_las_curves

    scans = tmp_path / "sheets"
    truths = {}
    for i in range(1):  # one good sheet: the suite's time budget (the unit tests cover more sheets)
        s = render_sheet(21, i, SMALL)
        write_sheet(s, scans, f"sheet{i}")
        truths[f"sheet{i}"] = s.truth
    # a sheet whose labels were scraped off: digitised, never given a depth, flagged
    s = render_sheet(21, 5, SMALL)
    x0, x1 = s.truth.depth_column
    s.image[:, x0 + 3 : x1 - 3] = 255
    write_sheet(s, scans, "nolabels")
    cv2.imwrite(str(scans / "blank.png"), np.full((2000, 900), 240, np.uint8))  # no track
    cv2.imwrite(str(scans / "huge.png"), np.full((3200, 900), 240, np.uint8))  # over the pixel budget below
    out = tmp_path / "out"
    ckpt = tiny_checkpoint(tmp_path / "model")
    cmd = [sys.executable, str(ROOT / "jobs" / "infer.py"), "--address", ray_gcs, "--input", str(scans),
           "--output", str(out), "--checkpoint", str(ckpt), "--layout", "sheet", "--no-tracking", "--no-progress",
           "--max-pixels", "2500000"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env_base, timeout=420, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for sid, t in truths.items():
        depth, curves, unit = read_las_curves(out / f"{sid}.las")
        rec = json.loads((out / "layout" / f"{sid}.json").read_text())
        assert len(rec["tracks"]) == len(t.tracks) * len(t.sections)
        assert len(curves) >= 2 * len(t.tracks)  # every track's curves (+ _CONF columns) on one grid
        sec = t.sections[0]
        assert not rec["flagged"], rec["reasons"]  # this sheet reads cleanly (checked: 3 of 3 labels)
        if shutil.which("tesseract"):  # the Makefile installs it; without it a metre sheet is assumed FT
            assert unit == sec.unit == "M"  # read from the header ("DEPTHS IN METRES")
        span = sec.pitch * (sec.row1 - sec.row0)
        top, bottom = sec.depth_at(rec["sections"][0]["rows"][0]), sec.depth_at(rec["sections"][0]["rows"][1])
        assert abs(depth[0] - top) < 0.0025 * span and abs(depth[-1] - bottom) < 0.0025 * span
        assert sum(lab["used"] for lab in rec["labels"]) >= 3
    import pandas as pd

    qc = pd.read_parquet(out / "qc.parquet")
    assert set(qc["scan_id"]) >= {"sheet0", "nolabels"}
    nl = qc[qc["scan_id"] == "nolabels"]
    assert nl["flagged"].all() and nl["reason"].str.contains("uncalibrated").all()
    _, _, unit = read_las_curves(out / "nolabels.las")
    assert unit == "PX"
    assert (out / "layout" / "nolabels.png").is_file()
    # a flagged sheet gets its traced curves drawn on it, the whole sheet at its own size
    drawn = cv2.imread(str(out / "overlays" / "nolabels.png"))
    assert drawn is not None and drawn.shape[:2] == cv2.imread(str(next(scans.glob("nolabels.*"))), 0).shape
    err = pd.read_parquet(out / "errors.parquet")
    row = err[err["id"] == "blank"]
    assert len(row) == 1 and row["kind"].iloc[0] in ("no_track", "blank")
    assert err[err["id"] == "huge"]["kind"].tolist() == ["too_large"]
    assert "Traceback" not in res.stderr
