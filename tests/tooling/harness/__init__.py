"""One harness for the OS processes that the integration tests, the chaos suite, the e2e tests
and the bench start: the embedded MongoDB server, Shards workers, the operator, the dashboard.

- `EmbeddedMongo(data_dir, database)`: `.start()` (again after `.kill()`: same port and data),
  `.kill()` (SIGKILL), `.stop()`, `.up`, `.uri`, `.pid`.
- `Processes(workdir, env, grace=, mongo=)`: `.start_worker(app, *options)`,
  `.start_operator(namespace, kubeconfig, *options, log=)`, `.start_candidate(namespace, kubeconfig,
  name, log=)` (an operator electing its leader; and its health URL), `.start_dashboard(*options, log=)`,
  `.spawn(command, log)`, each a `Child`; `.close()` stops them all, then the server.
- `Child`: `.pid`, `.running`, `.returncode`, `.output()`, `.send_signal(sig)`, `.pause()`/`.resume()`
  (SIGSTOP/SIGCONT), `.kill()`, `.terminate()`.
- `wait_until(condition, timeout, what)`: the one bounded wait; `reap(*popens, grace=, sig=)`: the
  one way to stop a process (signal, bounded wait, SIGKILL); `shards_env(uri)`; `cpu_seconds(pid)`;
  `answers(url)`: a health endpoint's 200.

Nothing is ever signalled but a pid this harness started.
"""

from tooling.harness.child import (
    COMMAND_ENV,
    REPO,
    WAIT,
    Child,
    cpu_seconds,
    reap,
    shards_command,
    spawn,
    wait_until,
)
from tooling.harness.mongo import EmbeddedMongo
from tooling.harness.processes import DEPLOY_LEASE, Processes, answers, shards_env

__all__ = [
    "COMMAND_ENV",
    "DEPLOY_LEASE",
    "REPO",
    "WAIT",
    "Child",
    "EmbeddedMongo",
    "Processes",
    "answers",
    "cpu_seconds",
    "reap",
    "shards_command",
    "shards_env",
    "spawn",
    "wait_until",
]
