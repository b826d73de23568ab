"""engine.data.surface: closed, outward, world-coordinate surfaces of a label map (timings: bench/bench_surface.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.base.errors import Cancelled
from engine.data.surface import label_surfaces, object_surface

R = 20.0
BALL = 4 / 3 * math.pi * R ** 3


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def affine_of(m3: np.ndarray, origin=(-30.0, 12.0, 40.0)) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = m3
    a[:3, 3] = origin
    return a


ANISO = affine_of(np.diag([0.8, 0.8, 5.0]))
OBLIQUE = affine_of(rotation(0.3, -0.5, 0.8) @ np.diag([0.8, 0.8, 5.0]))
MIRRORED = affine_of(np.diag([-0.8, 0.8, 5.0]))        # negative determinant (a radiological x axis)
OBLIQUE_MIRRORED = affine_of(rotation(0.2, 0.4, -0.6) @ np.diag([0.9, -1.1, 2.5]))


def ball_labels(affine: np.ndarray, shape=(16, 70, 70), value: int = 1):
    """A ball of radius R mm around the grid's centre, as label ``value``; (labels, centre RAS)."""
    z, y, x = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    xyz = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float64)
    world = xyz @ affine[:3, :3].T + affine[:3, 3]
    centre = affine[:3, :3] @ ((np.array(shape[::-1]) - 1) / 2) + affine[:3, 3]
    inside = (np.linalg.norm(world - centre, axis=1) <= R).reshape(shape)
    labels = np.zeros(shape, np.uint8)
    labels[inside] = value
    return labels, centre


@pytest.mark.parametrize("affine", [ANISO, OBLIQUE, MIRRORED, OBLIQUE_MIRRORED],
                         ids=["aniso", "oblique", "mirrored", "oblique-mirrored"])
def test_ball_volume_bounds_and_outward_normals(affine):
    labels, centre = ball_labels(affine, shape=(20, 70, 70) if affine is not OBLIQUE_MIRRORED else (24, 50, 50))
    voxel_mm3 = abs(np.linalg.det(affine[:3, :3]))
    counted = int(np.count_nonzero(labels)) * voxel_mm3
    meshes = label_surfaces(labels, affine)
    assert list(meshes) == [1]
    m = meshes[1]
    assert m.vertices.dtype == np.float32 and m.normals.dtype == np.float32 and m.faces.dtype == np.uint32
    assert m.vertices.shape[1] == 3 and m.faces.shape[1] == 3 and m.normals.shape == m.vertices.shape
    assert m.step == (1, 1, 1)
    # closed and outward: every edge is shared by exactly two faces, the enclosed volume is positive
    e = np.sort(np.concatenate([m.faces[:, [0, 1]], m.faces[:, [1, 2]], m.faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert set(counts.tolist()) == {2}
    assert abs(m.volume - counted) / counted < 0.04, (m.volume, counted)
    assert abs(m.volume - BALL) / BALL < 0.06, (m.volume, BALL)
    # within the ball's bounds +- one voxel (world positions, whatever the grid's orientation)
    voxel = float(np.linalg.norm(affine[:3, :3], axis=0).max())
    d = m.vertices.astype(np.float64) - centre
    radius = np.linalg.norm(d, axis=1)
    assert radius.max() <= R + voxel and radius.min() >= R - voxel, (radius.min(), radius.max())
    assert np.all(np.abs(d) <= R + voxel)
    # reaches out to the ball in every world direction (not a shrunken or shifted blob)
    assert np.all(d.max(0) > R - voxel) and np.all(d.min(0) < -(R - voxel))
    np.testing.assert_allclose(np.linalg.norm(m.normals, axis=1), 1.0, atol=1e-4)
    assert np.mean(np.sum(d * m.normals, axis=1) > 0) > 0.99


def test_two_objects_each_its_own_closed_surface_and_empty_labels():
    left, c1 = ball_labels(ANISO, shape=(20, 70, 70), value=3)
    right, _ = ball_labels(ANISO, shape=(20, 70, 70), value=7)
    labels = np.concatenate([left, right], axis=2)  # the second ball 70 voxels (56 mm) further along x
    meshes = label_surfaces(labels, ANISO)
    assert sorted(meshes) == [3, 7]
    for v, c in ((3, c1), (7, c1 + [56.0, 0, 0])):
        radius = np.linalg.norm(meshes[v].vertices - c, axis=1)
        assert R - 5.0 <= radius.min() and radius.max() <= R + 5.0
    assert meshes[3].triangles == meshes[7].triangles
    assert label_surfaces(labels, ANISO, values=[1, 2]) == {}
    assert label_surfaces(np.zeros((4, 8, 8), np.uint8), ANISO) == {}
    assert object_surface(labels, ANISO, 5) is None


def test_huge_object_is_coarsened_to_the_triangle_bound():
    labels, centre = ball_labels(np.diag([0.5, 0.5, 0.5, 1.0]), shape=(90, 90, 90))
    full = label_surfaces(labels, np.diag([0.5, 0.5, 0.5, 1.0]))[1]
    small = label_surfaces(labels, np.diag([0.5, 0.5, 0.5, 1.0]), max_triangles=full.triangles // 5)[1]
    assert small.step[0] >= 2 and small.step[0] == small.step[1] == small.step[2]
    assert small.triangles <= full.triangles // 5 * 1.1
    assert abs(small.volume - full.volume) / full.volume < 0.05
    assert np.linalg.norm(small.vertices - centre, axis=1).max() <= R + 0.5 * small.step[0]


def test_anisotropic_grid_is_coarsened_in_plane_first():
    labels, _ = ball_labels(ANISO, shape=(20, 70, 70))
    full = label_surfaces(labels, ANISO)[1]
    m = label_surfaces(labels, ANISO, max_triangles=full.triangles // 3)[1]
    assert m.step[0] == 1 and m.step[1] == m.step[2] >= 2


def test_stop_request_raises_cancelled():
    labels, _ = ball_labels(ANISO, shape=(20, 70, 70))
    with pytest.raises(Cancelled):
        label_surfaces(labels, ANISO, should_stop=lambda: True)
