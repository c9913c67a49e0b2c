"""Find a sheet's structure: sections, track borders, the depth column and its label boxes.

Pure NumPy/OpenCV on one 2-D uint8 portrait image (depth down the page, row 0
at the top); every function here is a function of its arguments.

    ink mask -> vertical rules (long, dark, thick) -> sections (rows where the
    rules run) -> tracks (between consecutive borders) -> depth column (the
    narrow interval holding printed numbers) -> label boxes (ink blobs in it
    that do not touch its edges: ticks do, labels do not)

A scan fed askew has no column ruled along its log: where straight rules find no track,
`find_layout` tries again with rules that may drift a few px either side (`drift_envelope`).

Why borders are told from grid lines by thickness: both run the whole length
of a section, but on printed logs the track borders are the heaviest rules
(grid major lines are at most about half their weight). A sheet whose borders
are no heavier than its grid is over-split; the QC then shows tracks narrower
than MIN_TRACK_FRAC, which are merged into their neighbour. A grid drawn as heavy
as the borders is told by its period instead (`on_grid`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

#: rows per block when testing where vertical rules run (a rule fills every block it crosses)
BLOCK = 32
#: a block counts as "ruled" in a column when this share of its rows is ink (dashes and speckle gaps allowed)
BLOCK_FILL = 0.85
#: a column is a rule when it is ruled in this share of the blocks of the tallest ruled stretch
RULE_COVER = 0.6
#: first pass of find_rules: a candidate rule is ruled in this share of RULE_COVER of the ruled blocks
#: (a header taller than the log makes the borders short on the whole sheet; their cover is then
#: measured again over the log blocks only)
LOG_CANDIDATE = 0.5
#: a block is in the log when at least this many candidate rules run in it: a log has two tracks or
#: more and so three borders or more, a header's frame two sides
LOG_RULES = 3
#: ... and the log blocks are at least this share of the ruled blocks (a header is shorter than its log)
LOG_MIN_SHARE = 0.5
#: a rule at least this share of the third-thickest rule's width is a border; thinner ones are grid.
#: The third, not the first: a border with a track's own edge line beside it scans as one wider
#: rule, and a sheet has at least three borders (two tracks and a depth column)
BORDER_THICK = 0.6
#: ... and never thinner than this (px): a heavy grid line is up to 3 px at 150 dpi
MIN_BORDER_PX = 3.5
#: ... but a sheet whose three heaviest full-length rules are lighter than that has its borders
#: among them (see border_width); never thinner than this (px)
MIN_BORDER_FLOOR_PX = 2
#: a depth column is at least this wide inside its borders (px)
DEPTH_COL_MIN_PX = 16
#: a border runs the whole section: its cover is at least this share of the best-covered rule's
#: (a long vertical stretch of a flat curve or a track's inner grid line covers less)
BORDER_COVER = 0.85
#: a rule is a grid division, never a border, when it is inside a run of this many rules or more
#: on one spacing (see on_grid) ...
GRID_RUN = 6
#: ... equal within this share of the spacing
GRID_TOL = 0.1
#: ... on a period under this share of the ruled width (a track's divisions; tracks of equal width
#: bordered by equal spacing are wider than this)
GRID_MAX_FRAC = 0.1
#: a border is a track's mid line when it sits at the middle of its two neighbours' interval (within
#: this share of it) ...
MID_TOL = 0.02
#: ... and the lines on its two sides mirror each other about it (each within this many px of the
#: other's mirror image) ...
MIRROR_PX = 3
#: ... at least this many pairs, and this share of the lines on both sides paired (a curve's own
#: density makes a faint bump now and then; a grid line missed on one side unpairs its mirror)
MIRROR_PAIRS = 2
MIRROR_SHARE = 0.75
#: a column is a (light) line in the column profile when it is this many gray levels darker, on
#: average over the ruled rows, than the median of the 17 columns around it
LINE_PROMINENCE = 6
#: tracks narrower than this share of the ruled width are merged into their neighbour (a missed grid line)
MIN_TRACK_FRAC = 0.04
#: the depth column is at most this share of the ruled width
MAX_DEPTH_COL_FRAC = 0.2
#: a section's first or last row is a horizontal rule (trimmed off) when this share of it is ink
RULE_ROW_INK = 0.75
#: sections shorter than this many rows are header boxes or rule stubs, not logs
MIN_SECTION_ROWS = 200
#: ink is darker than this gray level (and darker than Otsu's threshold) for structure finding
INK_LEVEL = 110
#: second try of find_layout, on a sheet where the first finds no track: a rule may wander this many
#: px either side along the log (a long scan fed askew, pages joined slightly out of line: 25 px over
#: 11,000 rows at 400 dpi), so no single column is ruled along it, yet every 32-row block is
DRIFT_PX = 8
#: a drifting rule's envelope spans its line's positions but this share of its log blocks at either
#: side (a stray block where a curve runs beside it)
DRIFT_ENVELOPE = 0.02


@dataclass(frozen=True)
class Rule:
    x0: int  # first column
    x1: int  # one past the last column
    cover: float  # share of ruled blocks over the sheet's ruled stretch
    line: int = 0  # a drifting rule's line width (px); [x0, x1) is then the envelope it wanders in

    @property
    def width(self) -> int:
        """The line's weight (px): its columns, or for a drifting rule its own width in each block."""
        return self.line or self.x1 - self.x0


@dataclass(frozen=True)
class LabelBox:
    x0: int
    y0: int
    x1: int  # exclusive
    y1: int  # exclusive
    rotated: bool  # text runs along the rows (printed 90 degrees turned)

    @property
    def row(self) -> float:
        """Centre row: a printed depth label is centred on its depth line."""
        return (self.y0 + self.y1 - 1) / 2.0


@dataclass(frozen=True)
class Layout:
    """A sheet's structure, in the (portrait) sheet's own pixels. Columns [x0, x1), rows inclusive."""

    height: int
    width: int
    header_end: int  # first row of the first section (-1: no section found)
    sections: tuple[tuple[int, int], ...]  # (row0, row1) log rows inside the rules
    borders: tuple[Rule, ...]
    tracks: tuple[tuple[int, int], ...]  # interior columns of each curve track (depth column excluded)
    depth_column: tuple[int, int] | None
    labels: tuple[LabelBox, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {
            "height": self.height, "width": self.width, "header_end": self.header_end,
            "sections": [list(s) for s in self.sections],
            "borders": [[r.x0, r.x1] for r in self.borders],
            "tracks": [list(t) for t in self.tracks],
            "depth_column": list(self.depth_column) if self.depth_column else None,
            "notes": list(self.notes),
        }


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, np.int8), [0]]))
    return [(int(a), int(b)) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


def ink_level(image: np.ndarray, level: int = INK_LEVEL) -> float:
    """The gray level at or below which a pixel is ink: the lower of `level` and Otsu's threshold."""
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"ink_mask expects a 2-D uint8 image, got {image.dtype} {image.shape}")
    otsu, _ = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Otsu's class 0 is <= its threshold: a two-level (1-bit) scan gets its ink level exactly
    return min(float(level), float(otsu))


def ink_mask(image: np.ndarray, level: int = INK_LEVEL) -> np.ndarray:
    """Boolean (H, W) mask of dark ink: at or below both `level` and Otsu's threshold (`ink_level`)."""
    return image <= ink_level(image, level)


def ruled_blocks(ink: np.ndarray, block: int = BLOCK, fill: float = BLOCK_FILL) -> np.ndarray:
    """(H // block, W) bool: column c is (almost) solid ink over block b. One pass over the pixels."""
    h, w = ink.shape
    nb = h // block
    if nb == 0:
        return np.zeros((0, w), bool)
    counts = ink[: nb * block].reshape(nb, block, w).sum(axis=1, dtype=np.int32)
    return counts >= fill * block


def find_rules(blocks: np.ndarray, cover: float = RULE_COVER,
               ink: np.ndarray | None = None, drift: int = 0) -> tuple[list[Rule], tuple[int, int]]:
    """Vertical rules from the ruled-block map, and the (first, last) block of the ruled stretch.

    Two passes. First, candidate rules: columns ruled in `cover` x LOG_CANDIDATE of
    the blocks where any two columns are ruled. Then the *log blocks*: blocks in
    which at least LOG_RULES candidates run together. A header's frame or a
    page-edge line runs through the header too, the log's borders and grid only
    below it; and a spliced repeat header breaks the log's rules. A column is a rule when it is ruled in `cover` of the log blocks, and
    its cover is measured there, so a tall or boxed header does not make the
    real borders look short. The ruled stretch is the first to the last log block.
    When the log blocks are under LOG_MIN_SHARE of the ruled blocks, the log is not
    what was found (three lines meeting in a header table, pages joined in one
    image): cover is then measured over all the ruled blocks, as if no header.
    ink: the ink mask; given, only drawn lines (`is_line`) are candidates, so a dark
    texture (a track of dense curves, scanner banding) does not choose the log blocks.
    drift: a line may wander this many px either side (see DRIFT_PX): a column counts as ruled in
    a block when a ruled column is within `drift` of it. Each rule is then its envelope (the
    columns it was ruled in, `drift_envelope`), with its own line width.
    """
    if blocks.size == 0:
        return [], (0, -1)
    exact = blocks
    if drift > 0:
        blocks = cv2.dilate(blocks.astype(np.uint8), np.ones((1, 2 * drift + 1), np.uint8)) > 0
    per_block = blocks.sum(axis=1)
    live = per_block >= 2
    if not live.any():
        return [], (0, -1)
    share = blocks[live].mean(axis=0)
    cand = true_runs(share >= cover * LOG_CANDIDATE)
    if ink is not None:
        idx = np.nonzero(live)[0]
        rows = (int(idx[0]) * BLOCK, (int(idx[-1]) + 1) * BLOCK)
        cand = [(x0, x1) for x0, x1 in cand if is_line(ink, Rule(x0, x1, 0.0), rows)]
    if cand:
        running = np.stack([blocks[:, x0:x1].any(axis=1) for x0, x1 in cand], axis=1).sum(axis=1)
        log = running >= LOG_RULES
        if log.sum() >= LOG_MIN_SHARE * live.sum():
            live = log
            share = blocks[live].mean(axis=0)
    idx = np.nonzero(live)[0]
    is_rule = share >= cover
    rules = [Rule(x0, x1, float(share[x0:x1].mean())) for x0, x1 in true_runs(is_rule)]
    if drift > 0:
        rules = [drift_envelope(exact[live], r, drift) for r in rules]
    return rules, (int(idx[0]), int(idx[-1]))


def drift_envelope(blocks: np.ndarray, rule: Rule, drift: int) -> Rule:
    """A rule found with drift tolerance, as the columns its line really crosses.

    blocks: the exact ruled-block map over the log blocks. The dilated run is the band where the
    line is within `drift` of most blocks, and may hold a second line beside it (a border and a
    track's edge line). In each block the widest ruled run in the band (widened by `drift`) is the
    line; its commonest width is the rule's weight, so that weight still tells a border from a grid
    line, and the columns it covers in all but DRIFT_ENVELOPE of the blocks at either side are its
    envelope."""
    a, b = max(0, rule.x0 - drift), min(blocks.shape[1], rule.x1 + drift)
    rows, start, width = widest_runs(blocks[:, a:b])
    if rows.size == 0:
        return rule
    x0 = a + int(np.floor(np.quantile(start, DRIFT_ENVELOPE)))
    x1 = a + int(np.ceil(np.quantile(start + width, 1 - DRIFT_ENVELOPE)))
    # the commonest width, not the median: a curve running along a grid line widens it in many blocks
    return Rule(x0, x1, rule.cover, line=max(1, int(np.bincount(width).argmax())))


def widest_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every row of a 2-D bool array that has a True: (row, start, length) of its longest run."""
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    r0, c0 = np.nonzero(edges == 1)
    _, c1 = np.nonzero(edges == -1)  # row-major: the k-th end closes the k-th start
    length = c1 - c0
    order = np.lexsort((length, r0))  # by row, then length: each row's longest run comes last
    last = np.r_[r0[order][1:] != r0[order][:-1], True]
    keep = order[last]
    return r0[keep], c0[keep], length[keep]


def border_width(heavy: int) -> float:
    """The least width (px) of a track border on a sheet whose third-heaviest full-length rule is
    `heavy` px wide: BORDER_THICK x heavy, and MIN_BORDER_PX where the sheet has rules that heavy
    (a heavy grid line is up to 3 px at 150 dpi, borders are heavier). A sheet ruled only in
    lighter lines (3 px borders and a grey or hairline grid, as many 150-dpi scans are) has its
    borders among them: then they need only be as heavy as its third-heaviest rule, and never
    under MIN_BORDER_FLOOR_PX (a 1 px hairline is grid at any resolution)."""
    return max(BORDER_THICK * heavy, min(MIN_BORDER_PX, heavy), MIN_BORDER_FLOOR_PX)


def pick_borders(rules: list[Rule], min_gap: int, ink: np.ndarray | None = None,
                 rows: tuple[int, int] | None = None) -> list[Rule]:
    """The heavy rules (see BORDER_THICK, `border_width`) that are not grid divisions (`on_grid`),
    with any two closer than `min_gap` merged. A sheet with fewer than two heavy rules, whose rules
    are mostly a regular grid, has its borders among the rules off the grid, however light.

    ink, rows: the sheet's ink mask and its ruled rows. Given, two heavy rules closer than
    `min_gap` stay apart when the strip between them is a narrow depth column (at least
    DEPTH_COL_MIN_PX wide, with two or more label boxes in it, `label_boxes`): a 150-dpi log
    can print its depths turned in a column narrower than any track."""
    if not rules:
        return []
    # a scanner's edge shadow runs the whole page, a log's rules only the log: it does not set the cover
    inner = off_edge(rules, ink.shape[1] if ink is not None else None) or rules
    best_cover = max(r.cover for r in inner)
    widths = sorted((r.width for r in rules if r.cover >= BORDER_COVER * best_cover), reverse=True)
    heavy = widths[min(2, len(widths) - 1)]
    grid = on_grid(rules)
    borders = [r for r, g in zip(rules, grid)
               if r.width >= border_width(heavy) and r.cover >= BORDER_COVER * best_cover and not g]
    if len(borders) < 2 and sum(grid) >= len(rules) / 2:
        # a sheet ruled in one weight, hairlines included (a 100-dpi print): no rule is heavy, but a
        # regular grid explains most of them, and the rules that break it are the borders
        borders = [r for r, g in zip(rules, grid) if not g and r.cover >= BORDER_COVER * best_cover]
    merged: list[Rule] = []
    for r in borders:
        if merged and r.x0 - merged[-1].x1 < min_gap and not (
                ink is not None and rows is not None and r.x0 - merged[-1].x1 >= DEPTH_COL_MIN_PX
                and len(label_boxes(ink, (merged[-1].x1, r.x0), rows)) >= 2):
            # two heavy rules closer than any track is wide: one is a border, the other a grid or
            # edge line beside it; keep the heavier (then the longer), never a span over both
            last = merged[-1]
            if (r.width, r.cover) > (last.width, last.cover):
                merged[-1] = r
        else:
            merged.append(r)
    return merged


def off_edge(rules: list[Rule], width: int | None) -> list[Rule]:
    """The rules not on the scan's first or last column (`width`: the scan's; None: only the first
    is known). A rule there may be the scanner's edge shadow, which runs the whole page."""
    return [r for r in rules if r.x0 > 0 and (width is None or r.x1 < width)]


def on_grid(rules: list[Rule]) -> list[bool]:
    """Which rules are divisions of a regular grid: the inner rules of a run of GRID_RUN or more
    rules on one spacing (within GRID_TOL), on a period under GRID_MAX_FRAC of the ruled width.

    A track's grid can be drawn as heavy as its borders (a 400-dpi scan draws both 3-4 px), but a
    border ends the run: the depth column, the margin or another track's grid lies on its other
    side, at another spacing. The run's two end rules stay (they are where a grid meets a border).
    Six, not four: a grid divides its track evenly, so a border sits on its track's period, and a
    depth column as wide as one division lines up a fourth and a fifth rule by chance."""
    flags = [False] * len(rules)
    if len(rules) < GRID_RUN:
        return flags
    c = np.array([(r.x0 + r.x1) / 2 for r in rules])
    gaps = np.diff(c)
    longest = GRID_MAX_FRAC * (rules[-1].x1 - rules[0].x0)
    start = 0  # first rule of the current run
    for k in range(1, len(gaps) + 1):
        if k < len(gaps) and gaps[k] <= longest and gaps[start] <= longest and \
                abs(gaps[k] - gaps[k - 1]) <= GRID_TOL * max(gaps[k], gaps[k - 1]):
            continue
        if k + 1 - start >= GRID_RUN:  # rules start .. k are one run
            for i in range(start + 1, k):
                flags[i] = True
        start = k
    return flags


def is_line(ink: np.ndarray, rule: Rule, rows: tuple[int, int], flank: int = 3, max_ink: float = 0.35) -> bool:
    """A rule is a drawn line when paper flanks it on at least one side: mostly no ink in the
    `flank` columns beside it over the ruled rows. Scanner banding, halftone screens and a bundle
    of parallel strokes are dark over a long stretch too, but have ink on both sides. (One side,
    not both: a track's own edge line often runs right beside a border.)"""
    r0, r1 = rows
    w = ink.shape[1]
    left = ink[r0:r1, max(0, rule.x0 - flank) : rule.x0]
    right = ink[r0:r1, rule.x1 : min(w, rule.x1 + flank)]
    return any(side.size == 0 or side.mean() <= max_ink for side in (left, right))


def column_lines(image: np.ndarray, rows: tuple[int, int]) -> np.ndarray:
    """Centre columns of every vertical line, light grey ones included: runs of columns that are
    LINE_PROMINENCE darker, on average over `rows`, than the median of the 17 columns around them.
    (Ink rules miss a grid printed in grey; the average over thousands of rows does not.)"""
    r0, r1 = rows
    profile = 255.0 - image[r0 : r1 + 1].mean(axis=0, dtype=np.float64)
    padded = np.pad(profile, 8, mode="edge")
    local = np.median(np.lib.stride_tricks.sliding_window_view(padded, 17), axis=1)
    return np.array([(a + b - 1) / 2 for a, b in true_runs(profile - local >= LINE_PROMINENCE)])


def trim_to_paper(image: np.ndarray, sections: list[tuple[int, int]], intervals: list[tuple[int, int]],
                  borders: list[Rule]) -> list[tuple[int, int]]:
    """An outer interval bounded by a rule on the scan's first or last column loses the blank
    paper between that rule and its first line.

    Such a rule may be the scanner's edge shadow, not the log's border: the scan cut the sheet
    past a border too faint to be a rule (BXG57's right track ran on over 150 px of blank margin),
    and paper is not track. A column is paper when it is within LINE_PROMINENCE / 2 grey levels,
    on average over the sections' rows, of the interval's paper (its median pixel). A track's
    horizontal grid lines reach its border, so a log drawn up to the scan's edge loses nothing."""
    out = list(intervals)
    w = image.shape[1]
    for k, left in ((0, True), (len(out) - 1, False)):
        if not out or (borders[0].x0 > 0 if left else borders[-1].x1 < w):
            continue
        x0, x1 = out[k]
        pixels = np.concatenate([image[r0 : r1 + 1, x0:x1] for r0, r1 in sections])
        darker = np.median(pixels) - pixels.mean(axis=0, dtype=np.float64)  # 0 on paper
        inked = np.flatnonzero(darker > LINE_PROMINENCE / 2)
        if inked.size:
            out[k] = (x0 + int(inked[0]), x1) if left else (x0, x0 + int(inked[-1]) + 1)
    return out


def mid_lines(lines: np.ndarray, borders: list[Rule]) -> set[int]:
    """Indices of borders that are a track's mid line, drawn as heavy as its borders: the line sits
    at the middle of its two neighbours' interval and the grid lines on its two sides mirror each
    other about it (MID_TOL, MIRROR_PX, MIRROR_PAIRS, MIRROR_SHARE).

    A linear track's grid is symmetric about its middle; two tracks side by side have grids of
    their own (another spacing, another phase, a log grid that runs the other way), so the lines
    about a true border do not mirror. Judged on the borders as found, all at once. Two equal
    linear tracks with the same evenly dividing grid cannot be told from one by this cue."""
    out = set()
    for k in range(1, len(borders) - 1):
        a, b, c = borders[k - 1], borders[k], borders[k + 1]
        mid = (b.x0 + b.x1 - 1) / 2
        if abs(mid - (a.x0 + a.x1 + c.x0 + c.x1 - 2) / 4) > MID_TOL * (c.x1 - a.x0):
            continue
        left = lines[(lines > a.x1) & (lines < b.x0 - 1)]
        right = lines[(lines > b.x1) & (lines < c.x0 - 1)]
        if left.size == 0 or right.size == 0:
            continue
        mirrored = 2 * mid - left
        paired_l = np.abs(mirrored[:, None] - right[None, :]).min(axis=1) <= MIRROR_PX
        paired_r = np.abs(right[:, None] - mirrored[None, :]).min(axis=1) <= MIRROR_PX
        pairs = int(paired_l.sum())
        if pairs >= MIRROR_PAIRS and (paired_l.sum() + paired_r.sum()) >= MIRROR_SHARE * (left.size + right.size):
            out.add(k)
    return out


def find_sections(ink: np.ndarray, borders: list[Rule], min_rows: int = MIN_SECTION_ROWS) -> list[tuple[int, int]]:
    """Row spans where at least half the borders are inked: the log sections, in row order.

    Exact to the row: a row is inside a section when most border columns are ink
    on it; short gaps (speckle-free dashes, a broken rule) of < 8 rows are bridged.
    A border on the scan's first or last column does not vote when two others do: a scanner's
    edge shadow runs the whole page, header included.
    """
    if len(borders) < 2:
        return []
    inner = off_edge(borders, ink.shape[1])
    voters = inner if len(inner) >= 2 else borders
    cols = [ink[:, r.x0 : r.x1].sum(axis=1) >= 0.5 * r.width for r in voters]  # width: a drifting line's own
    on = np.mean(cols, axis=0) >= 0.5
    # bridge short gaps
    on_i = on.astype(np.uint8)
    on_i = cv2.morphologyEx(on_i[:, None], cv2.MORPH_CLOSE, np.ones((9, 1), np.uint8))[:, 0] > 0
    return [(r0, r1 - 1) for r0, r1 in true_runs(on_i) if r1 - r0 >= min_rows]


def trim_rules(ink: np.ndarray, section: tuple[int, int], cols: tuple[int, int]) -> tuple[int, int]:
    """Drop a section's first and last rows while they are a horizontal rule (RULE_ROW_INK of the row
    is ink: a rule is solid across the tracks; a track printed dark, or a dense curve, fills half a row
    on every row, and must not trim the section away)."""
    r0, r1 = section
    row_ink = ink[r0 : r1 + 1, cols[0] : cols[1]].mean(axis=1)
    a, b = 0, len(row_ink) - 1
    while a < b and row_ink[a] > RULE_ROW_INK:
        a += 1
    while b > a and row_ink[b] > RULE_ROW_INK:
        b -= 1
    return r0 + a, r0 + b


def find_layout(image: np.ndarray) -> Layout:
    """Sections, borders, tracks, depth column and label boxes of a portrait uint8 sheet.

    Rules are first taken straight (a column ruled along the log). A sheet where that finds no
    track is tried again with rules that may drift DRIFT_PX either side (a long scan fed askew):
    its tracks are then the columns inside the borders' envelopes, and a note says so (the sheet
    is flagged: its crops lose a strip up to the drift at each track edge)."""
    ink = ink_mask(image)
    blocks = ruled_blocks(ink)
    layout = layout_from_rules(image, ink, blocks)
    if layout.tracks:
        return layout
    wandering = layout_from_rules(image, ink, blocks, drift=DRIFT_PX)
    if not wandering.tracks:
        return layout
    most = max(b.x1 - b.x0 - b.width for b in wandering.borders)
    return replace(wandering, notes=wandering.notes + (
        f"the rules drift along the log (up to {most} px): tracks are the columns inside the borders' drift",))


def layout_from_rules(image: np.ndarray, ink: np.ndarray, blocks: np.ndarray, drift: int = 0) -> Layout:
    """`find_layout` for one setting of the rules' drift (see `find_rules`)."""
    h, w = ink.shape
    rules, (b0, b1) = find_rules(blocks, ink=ink, drift=drift)
    rules = [r for r in rules if is_line(ink, r, (b0 * BLOCK, (b1 + 1) * BLOCK))]
    notes: list[str] = []
    if len(rules) < 2:
        return Layout(h, w, -1, (), tuple(rules), (), None, (), ("fewer than two vertical rules: no track borders",))
    span = rules[-1].x1 - rules[0].x0
    ruled = (b0 * BLOCK, min(h, (b1 + 1) * BLOCK) - 1)
    borders = pick_borders(rules, min_gap=max(8, int(MIN_TRACK_FRAC * span)), ink=ink, rows=ruled)
    mids = mid_lines(column_lines(image, ruled), borders)
    borders = [b for k, b in enumerate(borders) if k not in mids]
    if len(borders) < 2:
        return Layout(h, w, -1, (), tuple(borders), (), None, (), ("fewer than two track borders",))
    sections = find_sections(ink, borders)
    if not sections:
        return Layout(h, w, -1, (), tuple(borders), (), None, (), ("the borders never run together for "
                                                                      f"{MIN_SECTION_ROWS} rows: no log section",))
    intervals = [(a.x1, b.x0) for a, b in zip(borders[:-1], borders[1:])]
    sections = [trim_rules(ink, s, (borders[0].x0, borders[-1].x1)) for s in sections]
    intervals = trim_to_paper(image, sections, intervals, borders)
    # the depth column: a narrow interval holding at least two label-like blobs and otherwise
    # mostly paper. Tracks may carry numbers too (scale labels, a strip's own depth ticks), but
    # their curves and grid make them inkier than a column of ticks and labels.
    best, best_boxes, best_ink = None, [], 1.0
    for iv in intervals:
        if iv[1] - iv[0] > MAX_DEPTH_COL_FRAC * span or iv[1] - iv[0] < DEPTH_COL_MIN_PX:
            continue
        boxes = [b for s in sections for b in label_boxes(ink, iv, s)]
        share = float(np.mean([ink[s0 : s1 + 1, iv[0] : iv[1]].mean() for s0, s1 in sections]))
        if len(boxes) >= 2 and share < best_ink:
            best, best_boxes, best_ink = iv, boxes, share
    tracks = tuple(iv for iv in intervals if iv != best)
    if best is None:
        notes.append("no depth column: no narrow column between borders holds printed numbers")
    return Layout(h, w, int(sections[0][0]), tuple(sections), tuple(borders), tracks, best, tuple(best_boxes),
                  tuple(notes))


def label_boxes(ink: np.ndarray, column: tuple[int, int], section: tuple[int, int]) -> list[LabelBox]:
    """Boxes of printed labels in one depth column over one section, top to bottom.

    Blobs touching the column's left or right edge are ticks (or the border) and
    are dropped; so are specks (< 6 px). The remaining blobs are joined into
    labels by closing gaps of about a third of the median blob height (the gap
    between two digits), then kept when their size is that of printed text.
    """
    x0, x1 = column
    r0, r1 = section
    sub = ink[r0 : r1 + 1, x0:x1].astype(np.uint8)
    if sub.size == 0:
        return []
    n, lab, stats, _ = cv2.connectedComponentsWithStats(sub, connectivity=8)
    keep = np.zeros(n, bool)
    cw = x1 - x0
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if area < 6 or x <= 1 or x + bw >= cw - 1:
            continue
        keep[i] = True
    if not keep.any():
        return []
    blobs = keep[lab]
    heights = stats[keep, cv2.CC_STAT_HEIGHT]
    widths = stats[keep, cv2.CC_STAT_WIDTH]
    gap = int(max(3, np.median(np.minimum(heights, widths * 3)) // 2))
    joined = cv2.dilate(blobs.astype(np.uint8), np.ones((gap, gap), np.uint8))
    n2, lab2, st2, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    out = []
    for i in range(1, n2):
        m = (lab2 == i) & blobs
        ys, xs = np.nonzero(m) if st2[i, cv2.CC_STAT_AREA] < 50_000 else (np.array([]), np.array([]))
        if len(ys) < 12:
            continue
        by0, by1, bx0, bx1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        bh, bw = by1 - by0, bx1 - bx0
        short, long_ = min(bh, bw), max(bh, bw)
        if short < 6 or short > 120 or long_ > 12 * short:
            continue
        out.append(LabelBox(x0 + bx0, r0 + by0, x0 + bx1, r0 + by1, rotated=bh > 1.15 * bw))
    out.sort(key=lambda b: b.y0)
    return out
