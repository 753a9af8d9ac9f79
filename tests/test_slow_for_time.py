"""tests/slow_for_time.py marks the tests it names and refuses stale names."""

from __future__ import annotations

import pytest

import slow_for_time
from slow_for_time import mark_slow_for_time


class Item:
    def __init__(self, nodeid):
        self.nodeid, self.markers = nodeid, []

    def add_marker(self, marker):
        self.markers.append(marker)


def test_named_tests_are_marked_and_stale_names_refused(monkeypatch):
    monkeypatch.setattr(slow_for_time, "SLOW_FOR_TIME", {"tests/a.py::test_x[1]": 9.0})
    items = [Item("tests/a.py::test_x[1]"), Item("tests/a.py::test_x[2]")]
    mark_slow_for_time(items, "slow")
    assert [i.markers for i in items] == [["slow"], []]
    renamed = [Item("tests/a.py::test_y[1]")]
    with pytest.raises(ValueError, match=r"names tests/a.py::test_x\[1\], which is not a test"):
        mark_slow_for_time(renamed, "slow")
    mark_slow_for_time(renamed, "slow", check=False)  # a node id selected on the command line
    mark_slow_for_time([Item("tests/b.py::test_z")], "slow")  # its file not collected
