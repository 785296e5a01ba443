from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shards.errors import InvalidArgs
from shards.records import ProcessRecord, ProcessStatus
from shards.states import State
from shards_controller import check_args, matches
from shards_worker.progress import ProgressBuffer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_json_objects_are_accepted_unchanged(args: dict) -> None:
    assert check_args(args) == args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([1], "process arguments must be a JSON object, got list"),
        ({"x": float("nan")}, "process arguments are not JSON-compatible"),
        ({"x": object()}, "process arguments are not JSON-compatible"),
        ({"x": "y" * 70_000}, r"process arguments are \d+ bytes; the limit is 65536"),
    ],
)
def test_bad_args_are_refused(args: object, message: str) -> None:
    with pytest.raises(InvalidArgs, match=message):
        check_args(args)


def record(**fields: object) -> ProcessRecord:
    base = ProcessRecord(scope_id="s", process_id="count-sheep", name="Count sheep")
    for key, value in fields.items():
        setattr(base, key, value)
    return base


def test_filters_work_like_the_seed_gui() -> None:
    assert matches(record(), search="SHEEP")
    assert matches(record(), search="count-")
    assert not matches(record(), search="goats")
    assert not matches(record(detail_level=3), max_detail_level=2)
    assert not matches(record(special=True), include_special=False)
    assert not matches(record(), active_only=True)
    assert matches(record(status=ProcessStatus(state=State.STOPPING)), active_only=True)


def test_progress_buffer_coalesces_to_the_latest_value() -> None:
    buffer = ProgressBuffer()
    assert buffer.take() is None
    for i in range(1000):
        buffer.report(f"step {i}", i / 1000)
    latest = buffer.take()
    assert latest is not None and latest.message == "step 999"
    assert buffer.take() is None  # nothing new since
    assert buffer.latest().message == "step 999"
    assert buffer.reports == 1000
