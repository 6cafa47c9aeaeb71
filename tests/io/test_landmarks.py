from __future__ import annotations

import json

import numpy as np
import pytest

from monai_reg_ext.io import read_landmarks, voxel_to_physical

AFFINE = np.array([[0.0, 0.0, -2.5, 10.0], [1.5, 0.0, 0.0, -4.0], [0.0, 0.8, 0.0, 3.0], [0, 0, 0, 1]])
POINTS = np.array([[1.0, 2.0, 3.0], [4.5, 0.0, 7.25]])


def test_csv_with_and_without_header(tmp_path):
    (tmp_path / "a.csv").write_text("1,2,3\n4.5,0,7.25\n")
    np.testing.assert_allclose(read_landmarks(tmp_path / "a.csv"), POINTS)
    (tmp_path / "b.csv").write_text("name,k,j,i\np0,3,2,1\np1,7.25,0,4.5\n")  # columns picked by name
    np.testing.assert_allclose(read_landmarks(tmp_path / "b.csv"), POINTS)
    (tmp_path / "c.csv").write_text("X,Y\n1,2\n")
    np.testing.assert_allclose(read_landmarks(tmp_path / "c.csv"), [[1.0, 2.0]])


def test_json_voxel_and_physical(tmp_path):
    (tmp_path / "v.json").write_text(json.dumps(POINTS.tolist()))
    np.testing.assert_allclose(read_landmarks(tmp_path / "v.json"), POINTS)
    mm = voxel_to_physical(POINTS, AFFINE)
    (tmp_path / "p.json").write_text(json.dumps({"points": mm.tolist(), "space": "physical"}))
    np.testing.assert_allclose(read_landmarks(tmp_path / "p.json", affine=AFFINE), POINTS, atol=1e-12)
    (tmp_path / "p.csv").write_text("x,y,z\n" + "\n".join(",".join(map(str, p)) for p in mm))
    np.testing.assert_allclose(read_landmarks(tmp_path / "p.csv", space="physical", affine=AFFINE), POINTS, atol=1e-12)


def test_errors(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"points": POINTS.tolist(), "space": "physical"}))
    with pytest.raises(ValueError, match=r"p\.json.*affine"):
        read_landmarks(tmp_path / "p.json")
    with pytest.raises(ValueError, match="says space='physical'"):
        read_landmarks(tmp_path / "p.json", space="voxel")
    (tmp_path / "bad.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*x,y\[,z\]"):
        read_landmarks(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("1,2,3\n1,x,3\n")
    with pytest.raises(ValueError, match=r"bad2\.csv: row 2"):
        read_landmarks(tmp_path / "bad2.csv")
    (tmp_path / "bad.json").write_text(json.dumps({"pts": []}))
    with pytest.raises(ValueError, match=r"bad\.json.*'points'"):
        read_landmarks(tmp_path / "bad.json")
    (tmp_path / "l.txt").write_text("1,2,3\n0,20,0\n")
    with pytest.raises(ValueError, match="point 1 .*outside"):
        read_landmarks(tmp_path / "l.txt", spatial_shape=(10, 10, 10))
    with pytest.raises(ValueError, match="extension"):
        (tmp_path / "l.xml").write_text("")
        read_landmarks(tmp_path / "l.xml")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_landmarks(tmp_path / "nope.csv")
