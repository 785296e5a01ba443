"""What the kopf handlers share, set up once by runner.run_operator before kopf starts."""

from __future__ import annotations

from shards_controller import Controller

from shards_operator.mirror import Patcher, StatusMirror
from shards_operator.settings import OperatorSettings


class HandlerContext:
    settings: OperatorSettings
    controller: Controller
    mirror: StatusMirror
    schedules: Patcher  # ShardSchedule status patches and Events (the handlers' and its timer's)


SHARED = HandlerContext()
