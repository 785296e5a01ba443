"""`shards schedule ...`: create, list, get, preview, pause, unpause, trigger, backfill and delete
the schedules that launch a process at cron times or intervals. Workers fire them; these commands
only read and change them through the controller. Each prints a line or a table, or with
-o json / -o yaml the schedule record (ScheduleRecord.to_json)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from shards_cli.app import MongoOption, Output, OutputOption, app, controller, out
from shards_cli.documents import emit

if TYPE_CHECKING:
    from shards.schedule_times import Timing
    from shards.schedules import Action, NextFire, ScheduleRecord, ScheduleSpec
    from shards.states import State
    from shards_controller import Controller

schedule_app = typer.Typer(
    name="schedule", no_args_is_help=True, rich_markup_mode=None,
    help="Launch a process at cron times or intervals: create, list, get, preview, pause, unpause, "
         "trigger, backfill, delete.")
app.add_typer(schedule_app, short_help="Launch a process on a cron schedule or interval.")

NameArg = Annotated[str, typer.Argument(help="The schedule's name (unique in its scope).", metavar="NAME")]
ScopeOption = Annotated[str, typer.Option(
    "--scope", "-s", envvar="SHARDS_SCOPE", help="The schedule's scope.")]
CronOption = Annotated[str | None, typer.Option(
    "--cron", metavar="EXPR", help="Five cron fields ('*/5 * * * *') or @hourly, @daily, ...; "
                                   "wall-clock times in --tz.")]
TimezoneOption = Annotated[str | None, typer.Option(
    "--tz", metavar="ZONE", help="The cron times' IANA time zone (Europe/Paris) [default: UTC].")]
EveryOption = Annotated[str | None, typer.Option(
    "--every", metavar="DURATION", help="Fire at this interval instead: 30s, 15m, 1h, 1d (at least 1s).")]
OffsetOption = Annotated[str | None, typer.Option(
    "--offset", metavar="DURATION", help="Shift --every's times from the epoch (--every 1h --offset 5m: "
                                         "at :05).")]
JitterOption = Annotated[str, typer.Option(
    "--jitter", metavar="DURATION", help="Delay each fire by up to this much, the same delay for the same "
                                         "time on every worker.")]
StartAtOption = Annotated[str | None, typer.Option(
    "--start-at", metavar="TIME", help="No fire before this time (ISO 8601 with Z or an offset).")]
EndAtOption = Annotated[str | None, typer.Option(
    "--end-at", metavar="TIME", help="No fire after this time: the schedule is then Completed.")]


def _spec(name: str, scope: str, process: str, *, cron: str | None, tz: str | None, every: str | None,
          offset: str | None, jitter: str, start_at: str | None, end_at: str | None,
          **fields: Any) -> ScheduleSpec:
    """A schedule spec from the flags; each mistake one line naming its flag."""
    from shards.schedules import ScheduleSpec

    from shards_cli.times import parse_duration, parse_time, timing

    return ScheduleSpec(
        name=name, scope_id=scope, process_id=process, timing=timing(cron, tz, every, offset),
        jitter=parse_duration(jitter, "--jitter"),
        start_at=parse_time(start_at, "--start-at") if start_at else None,
        end_at=parse_time(end_at, "--end-at") if end_at else None, **fields)


def _states(ctl: Controller, records: list[ScheduleRecord]) -> dict[tuple[str, str], State]:
    """The state of each schedule's process (one read per scope), by (scope, process)."""
    states = {}
    for scope in sorted({record.spec.scope_id for record in records}):
        states.update({(scope, r.process_id): r.state for r in ctl.list(scope)})
    return states


def _document(record: ScheduleRecord, states: dict[tuple[str, str], State]) -> dict[str, Any]:
    state = states.get((record.spec.scope_id, record.spec.process_id))
    return {**record.to_json(), "processState": state.value if state else None}


def _action_json(action: Action) -> dict[str, Any]:
    from shards.records import iso

    return {**action.to_doc(), "nominal": iso(action.nominal), "at": iso(action.at)}


def _fires_json(fires: list[NextFire]) -> list[dict[str, Any]]:
    from shards.records import iso

    return [{"label": f.label, "nominal": iso(f.nominal), "fireAt": iso(f.fire_at)} for f in fires]


def _say(record: ScheduleRecord, what: str, output: Output) -> None:
    """One line for a person, or the schedule as a document for a script."""
    if output is Output.table:
        out().print(f"schedule {record.spec.scope_id}/{record.spec.name}: {what}", soft_wrap=True)
    else:
        emit(record.to_json(), output)


def _print_fires(fires: list[NextFire], timing: Timing) -> None:
    from shards_cli.output import fires_lines

    lines = fires_lines(fires, timing.timezone if timing.cron else "UTC")
    for line in lines or ["no time to come (past its end time)"]:
        out().print(f"  {line}", soft_wrap=True)


@schedule_app.command(short_help="Create a schedule; prints its next fire times.")
def create(
    name: NameArg,
    process: Annotated[str, typer.Option("--process", "-p", metavar="PROC", help="The process it launches.")],
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    cron: CronOption = None,
    tz: TimezoneOption = None,
    every: EveryOption = None,
    offset: OffsetOption = None,
    args: Annotated[str | None, typer.Option(
        "--args", help="Each launch's arguments: a JSON object, or @FILE holding one.")] = None,
    timeout: Annotated[float | None, typer.Option(
        help="Each attempt's time limit in seconds (default: the process's own).")] = None,
    retries: Annotated[int | None, typer.Option(
        help="Retries of a failed attempt (default: the process's own).")] = None,
    retry_backoff: Annotated[float | None, typer.Option(
        help="Seconds before the first retry (default: the process's own).")] = None,
    overlap: Annotated[str, typer.Option(
        help="While the previous run is active: Skip, BufferOne (one waits), BufferAll (each waits, up "
             "to --buffer-limit), CancelOther (stop it), TerminateOther (kill it).")] = "Skip",
    buffer_limit: Annotated[int, typer.Option(help="BufferAll: at most this many wait.")] = 10,
    catchup_window: Annotated[str, typer.Option(
        metavar="DURATION", help="Times missed (no worker alive) younger than this still fire; older "
                                 "ones are counted as missed.")] = "1m",
    jitter: JitterOption = "0s",
    pause_on_failure: Annotated[bool, typer.Option(
        "--pause-on-failure", help="Pause the schedule when a run it launched fails.")] = False,
    start_at: StartAtOption = None,
    end_at: EndAtOption = None,
    max_runs: Annotated[int | None, typer.Option(help="Completed after this many launches.")] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused (unpause to start).")] = False,
    note: Annotated[str, typer.Option(help="Why it is paused (with --paused).")] = "",
    confirm: Annotated[bool, typer.Option(
        "--confirm", help="Confirm its launches of a process with a warning.")] = False,
    output: OutputOption = Output.table,
) -> None:
    """Create a schedule that launches PROC at cron times (--cron, in --tz) or at an interval
    (--every). Prints the next 3 fire times; a schedule of that name already there is an error."""
    from shards.errors import InvalidArgs
    from shards.schedules import Overlap
    from shards_controller.inputs import launch_options

    from shards_cli.actions import parse_args
    from shards_cli.times import parse_duration

    if note and not paused:
        raise InvalidArgs("--note goes with --paused: it says why the schedule is paused")
    try:
        chosen = Overlap(overlap)
    except ValueError:
        raise InvalidArgs(f"--overlap must be one of {', '.join(o.value for o in Overlap)}, "
                          f"got {overlap!r}") from None
    spec = _spec(name, scope, process, cron=cron, tz=tz, every=every, offset=offset, jitter=jitter,
                 start_at=start_at, end_at=end_at, args=parse_args(args),
                 options=launch_options(timeout, retries, retry_backoff), overlap=chosen,
                 buffer_limit=buffer_limit, catchup_window=parse_duration(catchup_window, "--catchup-window"),
                 pause_on_failure=pause_on_failure, max_runs=max_runs, confirm=confirm)
    ctl = controller(mongo)
    record = ctl.schedules.create(spec, paused=paused, note=note)
    fires = ctl.schedules.preview(record.spec, 3)
    if output is not Output.table:
        emit({**record.to_json(), "upcoming": _fires_json(fires)}, output)
        return
    _say(record, f"created ({record.phase.value}), launches {process}; next times:", output)
    _print_fires(fires, spec.timing)


@schedule_app.command(name="list", short_help="The schedules, of one scope or all.")
def list_schedules(
    scope: Annotated[str | None, typer.Option(
        "--scope", "-s", envvar="SHARDS_SCOPE", help="Only this scope's schedules [default: all].")] = None,
    mongo: MongoOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List schedules: timing, paused, last action, next fire, their process's state, counts."""
    from shards_cli.output import schedules_table

    ctl = controller(mongo)
    records = ctl.schedules.list(scope)
    states = _states(ctl, records)
    if output is not Output.table:
        emit([_document(record, states) for record in records], output)
    elif not records:
        out().print("no schedules yet (shards schedule create NAME --process P --every 15m)")
    else:
        out().print(schedules_table(records, states))


@schedule_app.command(short_help="One schedule: its spec, counts and last actions.")
def get(name: NameArg, scope: ScopeOption = "default", mongo: MongoOption = None,
        output: OutputOption = Output.table) -> None:
    """Show one schedule: what it launches and when, what it did so far, its last actions."""
    from shards_cli.output import schedule_details

    ctl = controller(mongo)
    record = ctl.schedules.get(scope, name)
    states = _states(ctl, [record])
    if output is not Output.table:
        emit(_document(record, states), output)
    else:
        out().print(schedule_details(record, states.get((scope, record.spec.process_id))))


@schedule_app.command(short_help="The next fire times of a timing, without creating anything.")
def preview(
    cron: CronOption = None,
    tz: TimezoneOption = None,
    every: EveryOption = None,
    offset: OffsetOption = None,
    jitter: JitterOption = "0s",
    start_at: StartAtOption = None,
    end_at: EndAtOption = None,
    count: Annotated[int, typer.Option(min=1, max=1000, help="How many times.")] = 5,
    output: OutputOption = Output.table,
) -> None:
    """Print the next COUNT fire times of --cron/--tz or --every/--offset (with --jitter,
    --start-at, --end-at as create takes them). Needs no server; creates nothing."""
    from shards_controller import Controller
    from shards_store import connect

    spec = _spec("preview", "", "", cron=cron, tz=tz, every=every, offset=offset, jitter=jitter,
                 start_at=start_at, end_at=end_at)
    # The timing alone: the store is never read, so the client never connects.
    fires = Controller(connect(check=False)).schedules.preview(spec, count)
    if output is not Output.table:
        emit(_fires_json(fires), output)
    else:
        _print_fires(fires, spec.timing)


@schedule_app.command(short_help="Pause a schedule: nothing fires until unpause.")
def pause(name: NameArg, scope: ScopeOption = "default", mongo: MongoOption = None,
          note: Annotated[str, typer.Option(help="Why (shown by list and get).")] = "",
          output: OutputOption = Output.table) -> None:
    """Pause a schedule: no time fires until it is unpaused (runs already launched go on)."""
    record = controller(mongo).schedules.pause(scope, name, note)
    _say(record, f"paused ({record.note})", output)


@schedule_app.command(short_help="Unpause a schedule; times passed meanwhile do not fire.")
def unpause(name: NameArg, scope: ScopeOption = "default", mongo: MongoOption = None,
            output: OutputOption = Output.table) -> None:
    """Unpause a schedule: its next time counts from now (times that passed while it was paused
    are not fired; `backfill` fires them)."""
    from shards.records import utcnow

    from shards_cli.ages import ago

    record = controller(mongo).schedules.unpause(scope, name)
    when = f"next {ago(record.next.fire_at, utcnow())}" if record.next else "no time to come"
    _say(record, f"unpaused ({record.phase.value}), {when}", output)


@schedule_app.command(short_help="Launch a schedule's process now, under its overlap policy.")
def trigger(name: NameArg, scope: ScopeOption = "default", mongo: MongoOption = None,
            output: OutputOption = Output.table) -> None:
    """Launch now, as a fire would (the overlap policy applies); the next time does not move."""
    action = controller(mongo).schedules.trigger(scope, name)
    if output is not Output.table:
        emit(_action_json(action), output)
        return
    detail = f" ({action.detail})" if action.detail else ""
    out().print(f"schedule {scope}/{name}: triggered: {action.outcome.value}{detail}, run {action.run_id}",
                soft_wrap=True)


@schedule_app.command(short_help="Fire the times of a past range, in order.")
def backfill(
    name: NameArg,
    start: Annotated[str, typer.Option("--from", metavar="TIME", help="From this time (excluded).")],
    end: Annotated[str, typer.Option("--to", metavar="TIME", help="To this time (included).")],
    scope: ScopeOption = "default",
    mongo: MongoOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Fire the schedule's nominal times after --from up to --to, in order, under its overlap
    policy; a time fired before launches nothing again. At most 1000 times (else nothing fires)."""
    from collections import Counter

    from shards_cli.times import parse_time

    actions = controller(mongo).schedules.backfill(scope, name, parse_time(start, "--from"),
                                                    parse_time(end, "--to"))
    if output is not Output.table:
        emit([_action_json(action) for action in actions], output)
        return
    counts = Counter(action.outcome.value for action in actions)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in counts.items()) or "nothing to fire"
    out().print(f"schedule {scope}/{name}: backfilled {len(actions)} time{'' if len(actions) == 1 else 's'}"
                f"{': ' if actions else ' ('}{summary}{'' if actions else ')'}", soft_wrap=True)


@schedule_app.command(short_help="Delete a schedule (its runs are not touched).")
def delete(name: NameArg, scope: ScopeOption = "default", mongo: MongoOption = None,
           output: OutputOption = Output.table) -> None:
    """Delete a schedule: nothing fires after this; runs it launched go on."""
    record = controller(mongo).schedules.delete(scope, name)
    _say(record, "deleted", output)
