"""What application developers write: process definitions gathered in an App."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from shards.errors import InvalidDefinition
from shards.records import DEFAULT_POOL
from shards.retries import DEFAULT_BACKOFF, RunPolicy, check_backoff, check_on_shutdown, check_retries

if TYPE_CHECKING:
    from shards.context import ProcessContext

ProcessFunction = Callable[["ProcessContext"], Any]
ScopeData = dict[str, Any]

# Ids end up in Mongo keys, CLI arguments and Kubernetes labels: keep them plain.
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")  # matched whole (fullmatch)
MIN_DETAIL_LEVEL, MAX_DETAIL_LEVEL = 1, 4
# Pools name worker Deployments (`<release>-worker-<pool>`): a DNS label, short enough to fit.
_POOL_PATTERN = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")  # matched whole


def is_valid_id(value: object) -> bool:
    """Process ids, scope ids and run ids: letters, digits, '_', '.', ':', '-', up to 200."""
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def check_pool(pool: object) -> str:
    """A pool name (the worker Deployment that runs a process), or InvalidDefinition."""
    if not isinstance(pool, str) or not _POOL_PATTERN.fullmatch(pool):
        raise InvalidDefinition(f"invalid pool {pool!r}: use lowercase letters, digits and '-' "
                                "(a DNS label of at most 40 characters)")
    return pool


def check_timeout(timeout: object) -> float | None:
    """A run's time limit in seconds (None: none), or InvalidDefinition."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 10**9:
        raise InvalidDefinition(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


@dataclass(frozen=True)
class ProcessDefinition:
    """A named, long-running process: id, name, optional warning, detail level, special flag."""

    process_id: str
    name: str
    function: ProcessFunction
    warning: str = ""
    detail_level: int = 1
    special: bool = False
    pool: str = DEFAULT_POOL  # which workers run it (`shards worker APP --pool NAME`)
    timeout: float | None = None  # seconds a run may take (a launch may say otherwise)
    retries: int = 0  # failed attempts retried by default (a launch may say otherwise)
    retry_backoff: float = DEFAULT_BACKOFF  # seconds before the first retry, doubling after
    on_shutdown: str = "retry"  # when its worker shuts down: run again elsewhere, or end Stopped

    def __post_init__(self) -> None:
        if not isinstance(self.process_id, str) or not _ID_PATTERN.fullmatch(self.process_id):
            raise InvalidDefinition(
                f"invalid process id {self.process_id!r}: use letters, digits, '_', '.', ':', '-'"
            )
        if not callable(self.function):
            raise InvalidDefinition(f"process {self.process_id!r} has no callable function")
        level = self.detail_level
        if not isinstance(level, int) or not MIN_DETAIL_LEVEL <= level <= MAX_DETAIL_LEVEL:
            raise InvalidDefinition(
                f"process {self.process_id!r}: detail level must be 1..4, got {level!r}"
            )
        try:
            check_pool(self.pool)
            check_timeout(self.timeout)
            check_retries(self.retries)
            check_backoff(self.retry_backoff)
            check_on_shutdown(self.on_shutdown)
        except InvalidDefinition as error:
            raise InvalidDefinition(f"process {self.process_id!r}: {error}") from None

    def __call__(self, ctx: ProcessContext) -> Any:
        return self.function(ctx)

    def to_fields(self) -> dict[str, Any]:
        """The definition as stored on the record (everything but the function)."""
        return {
            "name": self.name,
            "warning": self.warning,
            "detailLevel": self.detail_level,
            "special": self.special,
            "pool": self.pool,
            "policy": self.policy.to_doc(),
        }

    @property
    def policy(self) -> RunPolicy:
        return RunPolicy(self.retries, self.retry_backoff, self.on_shutdown)


class ProcessOptions(TypedDict, total=False):
    """What a definition may say besides its id (the name defaults to the id)."""

    name: str
    warning: str
    detail_level: int
    special: bool
    pool: str
    timeout: float  # seconds: at the deadline the run is asked to stop, then killed, and fails
    retries: int  # failed attempts retried (exponential backoff with jitter)
    retry_backoff: float  # seconds before the first retry
    on_shutdown: str  # "retry" (hand the run off to another worker) or "stop"


def process(
    process_id: str, **options: Unpack[ProcessOptions]
) -> Callable[[ProcessFunction], ProcessDefinition]:
    """Decorator: turn a function into a ProcessDefinition (for scope-dependent catalogs)."""
    unknown = sorted(set(options) - set(ProcessOptions.__annotations__))
    if unknown:
        raise InvalidDefinition(f"process {process_id!r}: unknown option {', '.join(unknown)}")

    def wrap(function: ProcessFunction) -> ProcessDefinition:
        return ProcessDefinition(
            process_id=process_id,
            name=options.get("name") or process_id,
            function=function,
            warning=options.get("warning", ""),
            detail_level=options.get("detail_level", 1),
            special=options.get("special", False),
            pool=options.get("pool", DEFAULT_POOL),
            timeout=options.get("timeout"),
            retries=options.get("retries", 0),
            retry_backoff=options.get("retry_backoff", DEFAULT_BACKOFF),
            on_shutdown=options.get("on_shutdown", "retry"),
        )

    return wrap


class App:
    """A catalog of processes, optionally different per scope (as the seed's getProcessList)."""

    def __init__(
        self,
        get_process_list: Callable[[ScopeData], Iterable[ProcessDefinition]] | None = None,
        get_scope_data: Callable[[str], ScopeData | None] | None = None,
    ) -> None:
        self._definitions: dict[str, ProcessDefinition] = {}
        self._get_process_list = get_process_list
        self._get_scope_data = get_scope_data
        # The last list get_process_list returned, checked: most return the same list every time,
        # and the worker asks at every launch (checking 1,000 definitions costs 0.2 ms).
        self._checked: tuple[tuple[ProcessDefinition, ...], dict[str, ProcessDefinition]] | None = None

    def process(
        self, process_id: str, **options: Unpack[ProcessOptions]
    ) -> Callable[[ProcessFunction], ProcessDefinition]:
        """Decorator: define a process in this app's default catalog."""

        def register(function: ProcessFunction) -> ProcessDefinition:
            definition = process(process_id, **options)(function)
            self.add(definition)
            return definition

        return register

    def add(self, definition: ProcessDefinition) -> None:
        if definition.process_id in self._definitions:
            raise InvalidDefinition(f"duplicate process id {definition.process_id!r} in the catalog")
        self._definitions[definition.process_id] = definition

    @property
    def process_ids(self) -> list[str]:
        """The ids of the default catalog."""
        return list(self._definitions)

    @property
    def per_scope(self) -> bool:
        """The catalog comes from get_process_list, per scope: a worker advertises no list."""
        return self._get_process_list is not None

    def offered(self, pool: str) -> list[str]:
        """The ids of the default catalog that a worker of this pool advertises (and claims)."""
        return [pid for pid, definition in self._definitions.items() if definition.pool == pool]

    @property
    def pools(self) -> list[str]:
        """The pools the default catalog names, in order of first use."""
        return list(dict.fromkeys(definition.pool for definition in self._definitions.values()))

    def scope_data(self, scope_id: str) -> ScopeData:
        data = self._get_scope_data(scope_id) if self._get_scope_data else None
        return {"scopeId": scope_id, **(data or {})}

    def catalog(self, scope_data: ScopeData, *, check: bool = True) -> dict[str, ProcessDefinition]:
        """The processes available in a scope, checked for duplicate ids. check=False: as listed,
        unchecked (a run's OS process: its worker checked the catalog the run started from, and a
        large catalog's check is a millisecond)."""
        if self._get_process_list is None:
            return dict(self._definitions)
        definitions = tuple(self._get_process_list(scope_data))
        if not check:
            return {definition.process_id: definition for definition in definitions}
        checked = self._checked
        if checked is not None and checked[0] == definitions:
            return dict(checked[1])
        catalog: dict[str, ProcessDefinition] = {}
        for definition in definitions:
            if not isinstance(definition, ProcessDefinition):
                raise InvalidDefinition(
                    f"get_process_list returned {type(definition).__name__}, "
                    "expected ProcessDefinition"
                )
            if definition.process_id in catalog:
                raise InvalidDefinition(
                    f"duplicate process id {definition.process_id!r} in the catalog"
                )
            catalog[definition.process_id] = definition
        self._checked = (definitions, catalog)
        return dict(catalog)
