"""Gap filling and velocities over feature sequences."""
import numpy as np

from features.sequence import SequenceConfig, fill_gaps, sequence_transform, velocities


def ramp(length=12, channels=2):
    return np.tile(np.arange(length, dtype=np.float32)[:, None], (1, channels))


def test_short_gap_is_interpolated_linearly():
    matrix, valid = ramp(), np.ones(12, bool)
    valid[4:7] = False
    matrix[4:7] = 99
    filled, mask = fill_gaps(matrix, valid, max_gap=3)
    assert mask.all()
    np.testing.assert_allclose(filled[:, 0], np.arange(12))


def test_long_gap_and_edges_stay_masked():
    matrix, valid = ramp(), np.ones(12, bool)
    valid[[0, 3, 4, 5, 6]] = False
    filled, mask = fill_gaps(matrix, valid, max_gap=3)
    np.testing.assert_array_equal(mask, valid)
    assert (filled[~mask] == 0).all()
    np.testing.assert_allclose(filled[mask, 0], np.arange(12)[mask])


def test_velocities_are_first_differences_and_zero_across_masks():
    matrix, mask = ramp() * 2, np.ones(12, bool)
    mask[6] = False
    diff = velocities(matrix, mask)
    assert diff[0, 0] == 0 and diff[1, 0] == 2
    assert diff[6, 0] == 0 and diff[7, 0] == 0 and diff[8, 0] == 2


def test_transform_names_velocities():
    names = ("a", "b")
    out, mask, out_names = sequence_transform(ramp(), np.ones(12, bool), names,
                                              SequenceConfig(velocities=True))
    assert out.shape == (12, 4) and out_names == ("a", "b", "d_a", "d_b")
    out, _, out_names = sequence_transform(ramp(), np.ones(12, bool), names)
    assert out.shape == (12, 2) and out_names == names
