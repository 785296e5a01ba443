"""What a script relies on: run ids, exit codes that say how a run ended, -o json / -o yaml on
every command that prints, a streamed --watch, and a distinct code when no worker is alive."""

from __future__ import annotations

import json
import socket
import threading

import yaml
from shards.states import State

from integration.harness import TEST_APP, ShardsHarness, wait_until

DONE, ERROR, FAILED, STOPPED, TIMEOUT, NO_WORKER = 0, 1, 3, 4, 5, 6


def test_a_launch_prints_its_run_id_and_wait_exits_with_the_ending(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1, concurrency=3)
    shards_env.define("farm")
    launched = shards_env.ok("launch", "quick", "--scope", "farm", "--args", '{"pause": 0.5}')
    run_id = shards_env.record("farm", "quick").run_id
    assert f"farm/quick: launched (Scheduled), run {run_id}" in launched.stdout
    assert shards_env.cli("wait", "quick", "--scope", "farm", "--timeout", "60").returncode == DONE

    shards_env.ok("launch", "fail", "--scope", "farm")
    failed = shards_env.cli("wait", "fail", "--scope", "farm", "--timeout", "60")
    assert failed.returncode == FAILED, failed.stderr
    assert "farm/fail: ended Failed: boom: no reason" in failed.stdout
    again = shards_env.cli("wait", "fail", "--scope", "farm", "--timeout", "0")  # ended: answers at once
    assert again.returncode == FAILED

    shards_env.ok("launch", "wait-for-stop", "--scope", "farm")
    shards_env.wait_state("farm", "wait-for-stop", State.RUNNING)
    still = shards_env.cli("wait", "wait-for-stop", "--scope", "farm", "--timeout", "0.5")
    assert still.returncode == TIMEOUT
    assert still.stderr.strip() == "shards: error: farm/wait-for-stop: still Running after 0.5 s (it goes on)"
    stopped = shards_env.cli("stop", "wait-for-stop", "--scope", "farm", "--wait", "--wait-timeout", "60")
    assert stopped.returncode == DONE, stopped.stderr
    assert "farm/wait-for-stop: ended Stopped" in stopped.stdout
    assert shards_env.cli("wait", "wait-for-stop", "--scope", "farm").returncode == STOPPED

    shards_env.ok("dismiss", "wait-for-stop", "--scope", "farm")
    idle = shards_env.cli("wait", "wait-for-stop", "--scope", "farm")
    assert idle.returncode == ERROR
    assert "is Idle: nothing to wait for" in idle.stderr


def test_launch_wait_and_status_watch_exit_with_the_ending(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1, concurrency=2)
    shards_env.define("farm")
    assert shards_env.cli("launch", "fail", "--scope", "farm", "--wait").returncode == FAILED
    assert shards_env.cli("launch", "quick", "--scope", "farm", "--wait").returncode == DONE
    shards_env.ok("launch", "fail", "--scope", "farm")
    watched = shards_env.cli("status", "fail", "--scope", "farm", "--watch", "--timeout", "60")
    assert watched.returncode == FAILED
    shards_env.ok("launch", "wait-for-stop", "--scope", "farm")
    timed_out = shards_env.cli("status", "--scope", "farm", "--watch", "--timeout", "1")
    assert timed_out.returncode == TIMEOUT


def test_watch_with_json_streams_one_object_per_change(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    shards_env.ok("launch", "chatty", "--scope", "farm", "--args", '{"seconds": 1.5}')
    shards_env.wait_state("farm", "chatty", State.RUNNING)

    def stop_when_chatty_waits() -> None:
        wait_until(lambda: "final" in shards_env.record("farm", "chatty").progress.message
                   or shards_env.record("farm", "chatty").state is not State.RUNNING, what="chatty's chat")
        shards_env.ok("stop", "chatty", "--scope", "farm")

    stopper = threading.Thread(target=stop_when_chatty_waits)
    stopper.start()
    watched = shards_env.cli("status", "chatty", "--scope", "farm", "--watch", "-o", "json",
                             "--timeout", "60")
    stopper.join(timeout=60)
    assert watched.returncode == STOPPED, watched.stderr
    lines = watched.stdout.splitlines()
    documents = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(documents) >= 3
    assert documents[0]["state"] == "Running" and documents[-1]["state"] == "Stopped"
    assert len({json.dumps(d, sort_keys=True) for d in documents}) == len(documents)  # only changes
    assert {d["runId"] for d in documents} == {shards_env.record("farm", "chatty").run_id}


def test_every_printing_command_speaks_json_and_yaml(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    shards_env.ok("launch", "quick", "--scope", "farm", "--wait")
    commands = {
        ("status", "--scope", "farm"): lambda doc: {r["id"] for r in doc} >= {"quick", "fail"},
        ("status", "quick", "--scope", "farm"): lambda doc: doc["state"] == "Done",
        ("list", "--scope", "farm", "--search", "qui"): lambda doc: [r["id"] for r in doc] == ["quick"],
        ("history", "quick", "--scope", "farm"): lambda doc: doc[0]["state"] == "Done",
        ("scopes",): lambda doc: [s["scope"] for s in doc] == ["farm"],
        ("workers",): lambda doc: len(doc) == 1,
        ("pools",): lambda doc: doc["default"]["workers"] == 1,
        ("dismiss", "quick", "--scope", "farm"): lambda doc: doc["state"] == "Idle",
        ("launch", "quick", "--scope", "farm"): lambda doc: doc["runId"] and doc["waiting"] == "",
        ("wait", "quick", "--scope", "farm"): lambda doc: doc["state"] == "Done",
        ("define", "--scope", "farm"): lambda doc: "quick" in doc["processIds"],
    }
    for command, check in commands.items():
        for output, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
            if command[0] == "launch" and output == "yaml":
                continue  # quick is launched once, by the JSON round
            result = shards_env.ok(*command, "-o", output)
            assert check(parse(result.stdout)), (command, output, result.stdout)


def test_with_no_live_worker_define_says_so_at_once_and_launch_warns(shards_env: ShardsHarness) -> None:
    queued = shards_env.cli("define", "--scope", "farm", "--timeout", "600")
    assert queued.returncode == NO_WORKER
    assert "no worker is alive; the define is queued and runs when one starts" in queued.stderr
    shards_env.start_workers(1)
    wait_until(lambda: shards_env.store.scopes.get("farm") is not None, what="the queued define")
    for worker in shards_env.workers:
        worker.terminate()
    wait_until(lambda: not shards_env.store.workers.alive(), what="no live worker")
    launched = shards_env.cli("launch", "quick", "--scope", "farm")
    assert launched.returncode == DONE
    assert ("shards: warning: farm/quick: no live worker in pool 'default' offers process 'quick'"
            in launched.stderr)
    assert shards_env.record("farm", "quick").state is State.SCHEDULED


def test_near_misses_are_suggested(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    process = shards_env.cli("launch", "quik", "--scope", "farm")
    assert process.stderr.strip() == ("shards: error: unknown process 'quik' in scope 'farm' "
                                      "(did you mean 'quick'?)")
    scope = shards_env.cli("status", "--scope", "frm")
    assert scope.stderr.strip() == "shards: error: unknown scope 'frm' (did you mean 'farm'?)"
    far = shards_env.cli("status", "--scope", "pasture")
    assert "(define it first: shards define --scope pasture)" in far.stderr
    assert "farm" in shards_env.ok("scopes").stdout


def test_dismiss_while_stopping_says_to_wait(shards_env: ShardsHarness) -> None:
    shards_env.start_workers(1)
    shards_env.define("farm")
    log = shards_env.workdir / "finished.log"
    args = json.dumps({"pause": 3, "log": str(log)})
    shards_env.ok("launch", "finish-later", "--scope", "farm", "--args", args)
    shards_env.wait_state("farm", "finish-later", State.RUNNING)
    shards_env.ok("stop", "finish-later", "--scope", "farm")
    refused = shards_env.cli("dismiss", "finish-later", "--scope", "farm")
    assert refused.returncode == ERROR
    assert "dismiss it once it has stopped (shards wait finish-later --scope farm)" in refused.stderr
    assert shards_env.cli("wait", "finish-later", "--scope", "farm", "--timeout", "60").returncode in (
        DONE, STOPPED)
    shards_env.ok("dismiss", "finish-later", "--scope", "farm")


def test_a_worker_app_defaults_to_its_app_attribute_and_a_busy_metrics_port_is_named(
        shards_env: ShardsHarness) -> None:
    module_only = TEST_APP.rpartition(":")[0]
    shards_env.start_worker(module_only)
    shards_env.define("farm")  # that worker serves testapp.py:app
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused = shards_env.cli("worker", module_only, "--metrics-port", str(port))
    assert refused.returncode == ERROR
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in refused.stderr
    assert "choose another --metrics-port" in refused.stderr


def test_version_and_completion(shards_env: ShardsHarness) -> None:
    assert shards_env.ok("--version").stdout.startswith("shards ")
    # typer detects the shell from the parent processes (sh under make); this names it instead.
    completion = shards_env.cli("--show-completion", "bash",
                                env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert completion.returncode == 0, completion.stderr
    assert "_SHARDS_COMPLETE=complete_bash" in completion.stdout
    assert "complete -o default -F _shards_completion shards" in completion.stdout
