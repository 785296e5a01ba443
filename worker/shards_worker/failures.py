"""Why something failed, in one line a person understands."""

from __future__ import annotations


def error_line(error: BaseException) -> str:
    """The first line of an error's message (bounded), or its type when it has none."""
    text = str(error).strip().splitlines()
    return text[0][:500] if text else type(error).__name__


def describe_failure(failure: BaseException) -> str:
    """Why a process body ended with an exception."""
    if isinstance(failure, SystemExit):
        return f"the process called sys.exit({failure.code!r})" if failure.code is not None else \
            "the process called sys.exit()"
    if isinstance(failure, KeyboardInterrupt):
        return "the process raised KeyboardInterrupt"
    return error_line(failure)
