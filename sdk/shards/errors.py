"""Errors with one-line messages meant for people: the CLI prints them as they are."""


class ShardsError(Exception):
    """Base class: str(error) is a complete one-line explanation."""


class UnknownScope(ShardsError):
    pass


class UnknownProcess(ShardsError):
    pass


class UnknownRun(ShardsError):
    """A run id that is not in the history of the process named with it."""


class ProcessActive(ShardsError):
    """Launching (or redefining) a process that is scheduled, running or stopping."""


class ConfirmationRequired(ShardsError):
    """The process carries a warning and the launch did not confirm it."""


class InvalidDefinition(ShardsError):
    """A catalog is malformed: duplicate ids, bad detail level, missing function."""


class InvalidArgs(ShardsError):
    """Process arguments are not a JSON object."""


class ChildProcessFailed(ShardsError):
    """A child process failed and the parent did not ask to survive that."""


class NoWorker(ShardsError):
    """No live worker offers the process (a launch would wait until one does)."""


class NotActive(ShardsError):
    """Stopping a process that is not scheduled or running."""


class TimedOut(ShardsError):
    """A bounded wait ended before its condition held (the thing waited for may still happen)."""


class StoreUnavailable(ShardsError):
    """MongoDB could not be reached; the message is one line ("MongoDB unreachable: ...")."""


class Permanent(Exception):
    """Raise it from a process (`raise shards.Permanent("bad input") from error`) for a failure
    that retrying cannot fix: the run fails and the launch is not retried."""


class UnknownSchedule(ShardsError):
    """A schedule name that is not in the scope."""
