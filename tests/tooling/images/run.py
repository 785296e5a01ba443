"""Run a built image as a real container: runc on the image's rootfs (a buildah mount).

What a kubelet would do with ``readOnlyRootFilesystem`` and ``hostNetwork``: the image's entrypoint
and command (or the given arguments), its numeric user, environment and working directory; the root
filesystem read-only; new pid, ipc, uts and mount namespaces and the host's network. runc (Debian's
package, installed when missing) rather than buildah's default crun: crun 1.8 refuses cgroup v1
hybrid hosts like this one. Everything is removed afterwards (runc container, mount, buildah
container, bundle).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._common import ImageError, buildah, ensure_host_tools

RUNC_ROOT = Path("/run/shards-images-runc")


@dataclass(frozen=True)
class ImageConfig:
    user: str
    env: list[str]
    entrypoint: list[str]
    cmd: list[str]
    workdir: str
    labels: dict[str, str]
    exposed_ports: list[str] = field(default_factory=list)

    @property
    def uid_gid(self) -> tuple[int, int]:
        """The numeric user; a name (which the kubelet could not check for runAsNonRoot) is refused."""
        uid, _, gid = self.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ImageError(f"image user {self.user!r} is not numeric uid[:gid]")
        return int(uid), int(gid or uid)


def image_config(ref: str) -> ImageConfig:
    info = json.loads(buildah("inspect", "--type", "image", ref, timeout=120).stdout)
    config: dict[str, Any] = info["OCIv1"].get("config") or {}
    return ImageConfig(
        user=config.get("User", ""), env=list(config.get("Env") or []),
        entrypoint=list(config.get("Entrypoint") or []), cmd=list(config.get("Cmd") or []),
        workdir=config.get("WorkingDir") or "/", labels=dict(config.get("Labels") or {}),
        exposed_ports=sorted(config.get("ExposedPorts") or {}),
    )


@contextlib.contextmanager
def rootfs(ref: str) -> Iterator[Path]:
    """A working container of ``ref``, mounted; unmounted and removed afterwards."""
    container = buildah("from", "--quiet", "--pull=never", ref, timeout=300).stdout.strip()
    try:
        mount = Path(buildah("mount", container, timeout=120).stdout.strip())
        try:
            yield mount
        finally:
            buildah("umount", container, timeout=120, quiet=True)
    finally:
        buildah("rm", container, timeout=120, quiet=True)


def _runc(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["runc", "--root", str(RUNC_ROOT), *args], capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise ImageError(f"runc {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def _bundle_config(root: Path, config: ImageConfig, args: list[str], env: dict[str, str],
                   binds: dict[str, Path], readonly: bool, bundle: Path) -> dict[str, Any]:
    _runc("spec", "--bundle", str(bundle))
    spec: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    uid, gid = config.uid_gid
    merged = dict(item.split("=", 1) for item in config.env)
    merged.update(env)
    spec["process"].update(
        terminal=False, user={"uid": uid, "gid": gid}, args=args, cwd=config.workdir,
        env=[f"{k}={v}" for k, v in merged.items()],
    )
    spec["root"] = {"path": str(root), "readonly": readonly}
    spec["hostname"] = "shards-test"
    # Host networking: no network namespace of its own (as hostNetwork: true).
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"]
    # A writable /tmp, as the chart's pods have (an emptyDir): a worker's fork server needs one.
    spec["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]})
    for target, source in binds.items():
        spec["mounts"].append({"destination": target, "type": "bind", "source": str(source),
                               "options": ["rbind", "ro"]})
    return spec


@dataclass
class Container:
    id: str
    proc: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            _runc("kill", self.id, "TERM", check=False)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _runc("kill", self.id, "KILL", check=False)
                self.proc.wait(timeout=timeout)
        return self.proc.returncode


@contextlib.contextmanager
def container(ref: str, args: list[str] | None = None, *, argv: list[str] | None = None,
              env: dict[str, str] | None = None, binds: dict[str, Path] | None = None,
              readonly: bool = True, root: Path | None = None) -> Iterator[Container]:
    """Start ``ref`` in the background: its entrypoint + ``args`` (default: its cmd), or ``argv``
    instead of both. ``binds`` maps container paths to host paths, mounted read-only. The container
    is stopped (SIGTERM, then SIGKILL) and removed when the block ends.

    ``root``: a ``rootfs(ref)`` already mounted, to share between containers (read-only ones: a
    vfs working container is a full copy of the image, so making one per run costs seconds)."""
    ensure_host_tools(("runc",))
    config = image_config(ref)
    command = argv if argv is not None else [*config.entrypoint, *(config.cmd if args is None else args)]
    RUNC_ROOT.mkdir(parents=True, exist_ok=True)
    bundle = Path(tempfile.mkdtemp(prefix="shards-bundle-"))
    cid = f"shards-test-{secrets.token_hex(4)}"
    proc: subprocess.Popen[str] | None = None
    try:
        with contextlib.ExitStack() as stack:
            if root is None:
                root = stack.enter_context(rootfs(ref))
            spec = _bundle_config(root, config, command, env or {}, binds or {}, readonly, bundle)
            (bundle / "config.json").write_text(json.dumps(spec, indent=1))
            log = bundle / "output.log"
            with log.open("w") as sink:
                proc = subprocess.Popen(
                    ["runc", "--root", str(RUNC_ROOT), "run", "--bundle", str(bundle), cid],
                    stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, text=True,
                    start_new_session=True,
                )
            handle = Container(cid, proc, log)
            try:
                yield handle
            finally:
                handle.stop()
                _runc("delete", "--force", cid, check=False)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        shutil.rmtree(bundle, ignore_errors=True)


def run(ref: str, args: list[str] | None = None, *, argv: list[str] | None = None,
        env: dict[str, str] | None = None, readonly: bool = True, root: Path | None = None,
        timeout: float = 120) -> tuple[int, str]:
    """Run ``ref`` to completion, as ``container`` starts it: (exit code, stdout + stderr)."""
    with container(ref, args, argv=argv, env=env, readonly=readonly, root=root) as handle:
        try:
            handle.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            tail = handle.output()[-2000:]
            raise ImageError(f"{ref}: still running after {timeout:.0f}s:\n{tail}") from exc
        return handle.proc.returncode, handle.output()
