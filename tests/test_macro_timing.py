"""The macro's timing model (model/cycles.py, docs/design.md §7): tile load, input beats, steady-state
interval, and the event schedule that the RTL tests replay handshake by handshake."""

import numpy as np
import pytest

from dbpim.model.cycles import input_beats, macro_interval, macro_schedule, tile_load_cycles


def test_tile_load_and_input_beats():
    assert tile_load_cycles(16) == 16 and tile_load_cycles(3) == 3 and tile_load_cycles(0) == 1
    assert input_beats(16) == 16 and input_beats(1) == 1 and input_beats(0) == 1


@pytest.mark.parametrize("cycles,rows,n_col", [(5, 3, 16), (40, 16, 16), (3, 20, 4), (10, 10, 10), (7, 2, 9),
                                               (2, 1, 2), (131, 16, 16)])
def test_interval_is_the_schedule_steady_state(cycles, rows, n_col):
    tl = macro_schedule([cycles] * 40, rows, n_col)
    gaps = np.diff(tl.start)
    assert (gaps[-20:] == macro_interval(cycles, rows, n_col)).all()
    assert (np.diff(tl.out_accept[:, 0])[-20:] == macro_interval(cycles, rows, n_col)).all()


def test_schedule_first_vector_and_overlap():
    # 3 rows in, start the cycle after the last beat, 7 cycles of compute, 4 beats out right after
    tl = macro_schedule([7, 7], 3, 4)
    assert tl.in_accept[0].tolist() == [0, 1, 2] and tl.start[0] == 3 and tl.done[0] == 9
    assert tl.out_accept[0].tolist() == [10, 11, 12, 13]
    # the next vector loaded while the first computed and starts right after it (double-buffered input)
    assert tl.in_accept[1].tolist() == [3, 4, 5] and tl.start[1] == 10
    assert tl.end == tl.out_accept[1, -1] + 1


def test_schedule_waits_for_a_free_output_bank():
    # output never ready until cycle 100: vector 2 cannot start before vector 0 has drained
    ready = np.r_[np.zeros(100, bool), np.ones(1000, bool)]
    tl = macro_schedule([3, 3, 3], 1, 2, out_ready=ready)
    assert tl.out_accept[0].tolist() == [100, 101]
    assert tl.start[2] == 102 and tl.start[1] == tl.done[0] + 1


def test_schedule_input_gaps():
    tl = macro_schedule([4], 3, 2, in_gaps=[2, 0, 5])
    assert tl.in_accept[0].tolist() == [2, 3, 9] and tl.start[0] == 10


def test_schedule_rejects_wrong_gap_count():
    with pytest.raises(ValueError, match="in_gaps"):
        macro_schedule([4, 4], 3, 2, in_gaps=[0, 0])
