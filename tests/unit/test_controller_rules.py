from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shards.errors import InvalidArgs
from shards.records import ProcessRecord, ProcessStatus
from shards.states import State
from shards_controller import check_args, matches
from shards_worker.progress import ProgressBuffer

storable_keys = st.text().filter(lambda key: not key.startswith("$") and "." not in key and "\x00" not in key)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(storable_keys, inner, max_size=4),
    max_leaves=20,
)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(st.dictionaries(storable_keys, json_values, max_size=5))
def test_json_objects_are_accepted_unchanged(args: dict) -> None:
    assert check_args(args) == args


@given(st.dictionaries(st.text(), any_json, max_size=5))
def test_any_object_is_accepted_unchanged_or_refused_with_invalid_args(args: dict) -> None:
    try:
        assert check_args(args) == args
    except InvalidArgs as error:
        assert "\n" not in str(error)


def nested_list(depth: int) -> list:
    value: list = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


def nested(depth: int) -> dict:
    args: dict = {}
    inner = args
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]
    return args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([1], "process arguments must be a JSON object, got list"),
        ({"x": float("nan")}, "process arguments are not JSON-compatible"),
        ({"x": object()}, "process arguments are not JSON-compatible"),
        ({"x": "y" * 70_000}, r"process arguments are \d+ bytes; the limit is 65536"),
        (nested(33), "process arguments nest more than 32 levels deep"),
        (nested(10_000), "process arguments nest more than 32 levels deep"),
        ({"a": nested_list(32)}, "nest more than 32"),
        ({"$where": 1}, r"process argument key '\$where' may not start with '\$'"),
        ({"a": {"b.c": 1}}, "process argument key 'b.c' may not start with"),
        ({"a\x00": 1}, "may not start with '\\$' or contain '.' or a NUL character"),
        ({"n": 2**63}, "process argument 9223372036854775808 does not fit in 64 bits"),
    ],
)
def test_bad_args_are_refused(args: object, message: str) -> None:
    with pytest.raises(InvalidArgs, match=message):
        check_args(args)


def test_the_deepest_allowed_arguments_are_accepted() -> None:
    assert check_args(nested(32)) == nested(32)


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
