"""``make fresh-check``: run CI as a new machine would, on the machine you have.

A green CI on a machine that earlier runs prepared can hide a missing install step. This removes
what the project installs itself (tooling.programs' Debian packages, ``~/.cache/shards``, Go's
module and build caches, pip's cache, Maven's local repository), then runs ``bash .ci/run`` in a
fresh clone of HEAD with ``CI=true``, and prints how long it took. Everything it removes is
downloaded or built again by the run. Standard library only: no venv exists at that point.

It refuses (one line, exit 2) when not root, while a local node runs (purging containerd under
it would strand its Pods), or when purging a package would also remove one installed on purpose
(marked manual) that the project did not install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tooling import programs

REPO = Path(__file__).resolve().parents[2]
NODE_OWNER = Path("/run/shards-node.owner")
HOME = Path.home()


class Refused(RuntimeError):
    """The check cannot run here; nothing has been removed."""


def say(message: str) -> None:
    print(f"[fresh-check] {message}", flush=True)


def installed(packages: list[str]) -> list[str]:
    """Those of ``packages`` dpkg has installed."""
    found = []
    for package in packages:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip().endswith(" installed"):
            found.append(package)
    return found


def automatic() -> set[str]:
    """Packages apt installed only as dependencies of others."""
    proc = subprocess.run(["apt-mark", "showauto"], capture_output=True, text=True)
    return set(proc.stdout.split())


def purge_plan(packages: list[str]) -> list[str]:
    """Every package ``apt-get purge packages`` would remove (from its simulation)."""
    proc = subprocess.run(["apt-get", "-s", "purge", *packages], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Refused(f"apt-get -s purge failed: {proc.stderr.strip()[-300:]}")
    lines = proc.stdout.splitlines()
    return sorted({line.split()[1] for line in lines if line.startswith(("Purg ", "Remv "))})


def check_preconditions() -> list[str]:
    """The installed project packages to purge; raises :class:`Refused` when the check cannot run."""
    if os.geteuid() != 0:
        raise Refused("needs root (it purges Debian packages, as a fresh machine has none of them)")
    if NODE_OWNER.exists():
        owner = NODE_OWNER.read_text().strip()
        raise Refused(f"a local node runs for {owner}: stop it first (make cluster-down)")
    ours = installed(programs.project_packages())
    if ours:
        # Dependencies apt installed along with ours (marked automatic) go with them; a package
        # someone installed on purpose (marked manual: the machine's image) is never touched.
        others = sorted(set(purge_plan(ours)) - set(programs.project_packages()) - automatic())
        if others:
            raise Refused(f"purging {' '.join(ours)} would also remove {' '.join(others)}, which the "
                          "project did not install; not touching them")
    return ours


def go_env(name: str) -> Path | None:
    go = shutil.which("go")
    if go is None:
        return None
    value = subprocess.run([go, "env", name], capture_output=True, text=True).stdout.strip()
    return Path(value) if value else None


def remove_tree(path: Path | None) -> None:
    if path is not None and path.exists():
        say(f"removing {path}")
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)  # Go's module cache is read-only
        shutil.rmtree(path)


def forget_installs(packages: list[str]) -> None:
    if packages:
        say(f"purging {' '.join(packages)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "purge", "-y", "-q", *packages], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    caches = [HOME / ".cache" / "shards", go_env("GOMODCACHE"), go_env("GOCACHE"), HOME / ".cache" / "pip",
              HOME / ".m2" / "repository"]
    caches += [Path(os.environ[v]) for v in ("SHARDS_TOOLS_CACHE", "SHARDS_IMAGES_CACHE")
               if os.environ.get(v)]
    for path in caches:
        remove_tree(path)
    missing = [p.name for p in programs.PROGRAMS if p.by_project and p.location() is not None]
    if missing:
        raise RuntimeError(f"still installed after the purge: {', '.join(missing)}")


def clean_env() -> dict[str, str]:
    """The caller's environment and CI=true, without the project's settings and an active venv
    (the machine's own settings, PIP_* and PATH among them, stay: CI runs with them too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARDS_", "VIRTUAL_ENV", "KUBECONFIG"))}
    path = [d for d in env.get("PATH", "").split(os.pathsep) if d and "/.venv/" not in d + "/"]
    env["PATH"] = os.pathsep.join(path)
    env["CI"] = "true"
    return env


def main() -> int:
    try:
        packages = check_preconditions()
    except Refused as exc:
        print(f"fresh-check: {exc}", file=sys.stderr)
        return 2
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True)
    if dirty.stdout.strip():
        say("the work tree has uncommitted changes: the clone has HEAD only")
    work = Path(tempfile.mkdtemp(prefix="shards-fresh-check-"))
    clone, log_path = work / "shards", work / "ci.log"
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    say(f"cloning {REPO} at {head} into {clone}")
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(REPO), str(clone)], check=True)
    forget_installs(packages)
    say(f"bash .ci/run (CI=true) in {clone}; log {log_path}")
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(["bash", ".ci/run"], cwd=clone, env=clean_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            log.write(line)
        code = proc.wait()
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    verdict = "passed" if code == 0 else f"FAILED (exit {code})"
    say(f".ci/run on a fresh clone of {head} {verdict} in {minutes} min {seconds} s; log {log_path}")
    if code == 0:
        shutil.rmtree(clone, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
