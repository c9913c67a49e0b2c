"""LAS 2.0 writer/reader: lasio re-reads every file with STRT/STOP/STEP consistent with ~A."""

from __future__ import annotations

import lasio
import numpy as np
import pytest

from veernet_ray.las.lasfile import LasCurve, read_las_curves, uniform_step, write_las


def assert_header_consistent(path):
    """The LAS writer rules (docs/contracts.md section 4), checked on the file as lasio reads it back."""
    text = path.read_text()
    sections = [line.split()[0] for line in text.splitlines() if line.startswith("~")]
    assert sections[0].startswith("~V") and sections[-1].startswith("~A")
    las = lasio.read(str(path))
    assert str(las.version["VERS"].value) in ("2.0", "2")
    assert las.version["WRAP"].value == "NO"
    idx = np.asarray(las.index, dtype=float)
    assert las.curves[0].mnemonic == "DEPT"
    assert float(las.well["STRT"].value) == idx[0]
    assert float(las.well["STOP"].value) == idx[-1]
    step = float(las.well["STEP"].value)
    if step != 0:
        np.testing.assert_allclose(np.diff(idx), step, rtol=1e-6)
    unit = las.curves[0].unit
    assert las.well["STRT"].unit == las.well["STOP"].unit == las.well["STEP"].unit == unit
    # ~A is numbers only
    data_lines = text.split("~A", 1)[1].splitlines()[1:]
    for line in data_lines:
        [float(tok) for tok in line.split()]
    return las


def test_uniform_grid_round_trip_with_null(tmp_path):
    depth = 1200.0 + 0.1524 * np.arange(50)
    gr = np.linspace(10, 140, 50)
    gr[[3, 17, 18]] = np.nan
    path = tmp_path / "a.las"
    write_las(path, depth, [LasCurve("GR", "GAPI", gr, "gamma ray")], depth_unit="M", well={"WELL": "A-1"})
    las = assert_header_consistent(path)
    assert float(las.well["STEP"].value) == pytest.approx(0.1524)
    assert las.well["WELL"].value == "A-1"
    assert "-999.25" in path.read_text()
    d, curves, unit = read_las_curves(path)
    assert unit == "M"
    np.testing.assert_allclose(d, depth, atol=1e-9)
    np.testing.assert_array_equal(np.isnan(curves["GR"]), np.isnan(gr))
    np.testing.assert_allclose(curves["GR"][~np.isnan(gr)], gr[~np.isnan(gr)], atol=1e-6)


def test_non_uniform_grid_writes_step_zero(tmp_path):
    depth = np.array([100.0, 100.5, 101.0, 101.75, 102.0])
    path = tmp_path / "b.las"
    write_las(path, depth, [LasCurve("X", "", np.arange(5.0))], depth_unit="FT")
    las = assert_header_consistent(path)
    assert float(las.well["STEP"].value) == 0.0
    assert uniform_step(depth) == 0.0
    assert uniform_step(np.arange(10) * 0.1) == pytest.approx(0.1)


def test_descending_depth(tmp_path):
    depth = 2000.0 - 0.5 * np.arange(20)
    path = tmp_path / "c.las"
    write_las(path, depth, [LasCurve("RES", "OHMM", np.geomspace(0.2, 2000, 20))], depth_unit="F")
    las = assert_header_consistent(path)
    assert float(las.well["STEP"].value) == pytest.approx(-0.5)
    assert float(las.well["STRT"].value) == 2000.0


def test_params_mnemonics_and_determinism(tmp_path):
    depth = np.arange(10.0)
    curves = [LasCurve("G R", "x", np.ones(10)), LasCurve("G_R", "x", np.ones(10)), LasCurve("DEPT", "", np.ones(10))]
    params = {"MODEL": ("veernet", "", "model name"), "CKPT": ("ab:cd",)}
    a, b = tmp_path / "a.las", tmp_path / "b.las"
    write_las(a, depth, curves, depth_unit="PX", params=params)
    write_las(b, depth, curves, depth_unit="PX", params=params)
    assert a.read_bytes() == b.read_bytes()
    las = assert_header_consistent(a)
    assert las.keys() == ["DEPT", "G_R", "G_R_1", "DEPT_1"]
    assert las.params["MODEL"].value == "veernet"
    assert las.params["CKPT"].value == "ab_cd"  # colons end a LAS value field
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_single_sample(tmp_path):
    path = tmp_path / "one.las"
    write_las(path, np.array([5.0]), [LasCurve("A", "", np.array([1.0]))], depth_unit="M")
    las = assert_header_consistent(path)
    assert float(las.well["STEP"].value) == 0.0


@pytest.mark.parametrize(
    "depth, values, unit, match",
    [
        (np.array([]), np.array([]), "M", "empty"),
        (np.array([1.0, 2.0, 2.0]), np.zeros(3), "M", "strictly"),
        (np.array([1.0, 3.0, 2.0]), np.zeros(3), "M", "strictly"),
        (np.array([1.0, np.nan]), np.zeros(2), "M", "NaN"),
        (np.array([1.0, 2.0]), np.zeros(3), "M", "values"),
        (np.array([1.0, 2.0]), np.zeros(2), "KM", "depth_unit"),
        (np.array([1.0, 2.0]), np.array([1.0, np.inf]), "M", "infinite"),
    ],
)
def test_bad_inputs_raise(tmp_path, depth, values, unit, match):
    path = tmp_path / "bad.las"
    with pytest.raises(ValueError, match=match):
        write_las(path, depth, [LasCurve("A", "", values)], depth_unit=unit)
    assert not path.exists()
    assert not list(tmp_path.iterdir())


def test_units_mnemonics_and_descriptions_cannot_break_a_header_line(tmp_path):
    """Issue 14.7: a unit with '.', ':', a space or a line break once split the ~C line."""
    import lasio

    depth = np.arange(3.0)
    curves = [LasCurve("G R.x:y", "a.b:c\nd e", np.ones(3), "de:sc\x0bx\u2028y"),
              LasCurve("RES\u2028X", "ohm m", np.full(3, 2.0), "of GR:\r\nx")]
    write_las(tmp_path / "u.las", depth, curves, depth_unit="M", params={"K.E:Y": ("v:1", "u.n:it", "d:e")})
    text = (tmp_path / "u.las").read_text()
    assert len(text.splitlines()) == len(text.split("\n")) - 1  # no stray line breaks of any kind
    las = lasio.read(str(tmp_path / "u.las"))
    assert [(c.mnemonic, c.unit) for c in las.curves] == [("DEPT", "M"), ("G_R_X_Y", "a_b_c_d_e"), ("RES_X", "ohm_m")]
    assert las.curves[1].descr == "de;sc x y" and las.params["K_E_Y"].unit == "u_n_it"
    np.testing.assert_allclose(las.curves[2].data, 2.0)
