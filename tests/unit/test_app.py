from __future__ import annotations

import pytest
import shards
from shards.errors import InvalidDefinition


def noop(ctx: shards.ProcessContext) -> None:
    pass


def test_the_decorator_registers_definitions_with_all_fields() -> None:
    app = shards.App()

    @app.process("count-sheep", name="Count sheep", warning="careful", detail_level=2, special=True,
                 pool="heavy", retries=3, retry_backoff=0.5, on_shutdown="stop")
    def count(ctx: shards.ProcessContext) -> None:
        pass

    [definition] = app.catalog(app.scope_data("s")).values()
    assert definition is count
    assert definition.to_fields() == {
        "name": "Count sheep", "warning": "careful", "detailLevel": 2, "special": True, "pool": "heavy",
        "policy": {"retries": 3, "retryBackoff": 0.5, "onShutdown": "stop"},
    }
    assert app.process_ids == ["count-sheep"]


def test_a_worker_of_a_pool_offers_only_that_pools_processes() -> None:
    app = shards.App()
    app.process("light-a")(noop)
    app.process("heavy-a", pool="heavy")(noop)
    app.process("light-b")(noop)
    assert app.offered("default") == ["light-a", "light-b"]
    assert app.offered("heavy") == ["heavy-a"]
    assert app.offered("gpu") == []
    assert app.pools == ["default", "heavy"]
    assert not app.per_scope


@pytest.mark.parametrize("pool", ["", "Heavy", "a_b", "-x", "x-", "p" * 41, 3])
def test_bad_pools_are_refused_in_one_line(pool: object) -> None:
    with pytest.raises(InvalidDefinition, match=r"process 'x': invalid pool .*DNS label") as caught:
        shards.process("x", pool=pool)(noop)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_name_defaults_to_the_id() -> None:
    assert shards.process("x")(noop).name == "x"


def test_duplicate_ids_are_refused() -> None:
    app = shards.App()
    app.process("a")(noop)
    with pytest.raises(InvalidDefinition, match="duplicate process id 'a' in the catalog"):
        app.process("a")(noop)


@pytest.mark.parametrize("process_id", ["", "has space", "ünï", "x" * 201, "-leading"])
def test_bad_ids_are_refused(process_id: str) -> None:
    with pytest.raises(InvalidDefinition, match="invalid process id"):
        shards.process(process_id)(noop)


@pytest.mark.parametrize("level", [0, 5, 1.5, "2"])
def test_detail_level_must_be_1_to_4(level: object) -> None:
    with pytest.raises(InvalidDefinition, match=r"detail level must be 1\.\.4"):
        shards.process("p", detail_level=level)(noop)  # type: ignore[arg-type]


def test_catalog_and_scope_data_can_depend_on_the_scope() -> None:
    a, b = shards.process("a")(noop), shards.process("b")(noop)
    app = shards.App(
        get_process_list=lambda data: [a, b] if data["big"] else [a],
        get_scope_data=lambda scope: {"big": scope == "big"},
    )
    assert list(app.catalog(app.scope_data("big"))) == ["a", "b"]
    assert list(app.catalog(app.scope_data("small"))) == ["a"]
    assert app.scope_data("small") == {"scopeId": "small", "big": False}


def test_a_scoped_catalog_follows_every_change_of_the_list() -> None:
    """The last list is kept checked (it is asked for at every launch); a changed list, or a
    list changed in place, is checked again, and a caller's changes to the catalog stay its own."""
    a, b = shards.process("a")(noop), shards.process("b")(noop)
    listed = [a, b]
    app = shards.App(get_process_list=lambda data: listed)
    first = app.catalog({})
    first.pop("a")
    assert list(app.catalog({})) == ["a", "b"]
    listed.append(a)  # a duplicate, in place
    with pytest.raises(InvalidDefinition, match="duplicate process id 'a'"):
        app.catalog({})
    listed[:] = [b]
    assert list(app.catalog({})) == ["b"]


def test_a_scoped_catalog_is_checked_too() -> None:
    a = shards.process("a")(noop)
    with pytest.raises(InvalidDefinition, match="duplicate process id 'a'"):
        shards.App(get_process_list=lambda data: [a, a]).catalog({})
    with pytest.raises(InvalidDefinition, match="returned function, expected ProcessDefinition"):
        shards.App(get_process_list=lambda data: [noop]).catalog({})  # type: ignore[list-item]


def test_a_misspelt_option_is_refused() -> None:
    with pytest.raises(InvalidDefinition, match="process 'p': unknown option detial_level"):
        shards.process("p", detial_level=2)(noop)  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["nl1\n", "farm\n", "a\nb", "pool\n"])
def test_an_id_or_pool_ending_in_a_newline_is_refused(value: str) -> None:
    """`$` also matches before a final newline: ids and pools are matched whole."""
    from shards.app import check_pool, is_valid_id

    assert not is_valid_id(value)
    with pytest.raises(InvalidDefinition):
        check_pool(value)
    with pytest.raises(InvalidDefinition):
        shards.ProcessDefinition(value, "P", print)
