"""A handle on a running local control plane: kubeconfig, server URL, kubectl and helm."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._common import ClusterError

KUBECTL_TIMEOUT_S = 120.0


class KubectlError(ClusterError):
    """kubectl (or helm) exited non-zero; carries its output."""

    def __init__(self, argv: list[str], result: subprocess.CompletedProcess[str]) -> None:
        self.argv = argv
        self.returncode = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr
        super().__init__(
            f"{' '.join(argv[:1] + argv[1:6])}... exited {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()[:2000]}"
        )


@dataclass(frozen=True)
class KubeCluster:
    """What tests and the CLI need to talk to the control plane."""

    state_dir: Path
    server: str
    kubeconfig: Path
    bin_dir: Path
    controller_manager: bool

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    def env(self) -> dict[str, str]:
        """Environment for running kubectl/helm against this cluster."""
        path = f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        helm_home = self.state_dir / "helm"
        return dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            PATH=path,
            HELM_CACHE_HOME=str(helm_home / "cache"),
            HELM_CONFIG_HOME=str(helm_home / "config"),
            HELM_DATA_HOME=str(helm_home / "data"),
        )

    def _run(
        self,
        tool: str,
        args: tuple[str, ...],
        input: str | None,
        check: bool,
        timeout: float,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin_dir / tool), *args]
        env = self.env()
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        try:
            result = subprocess.run(
                argv, input=input, capture_output=True, text=True, env=env, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{tool} {' '.join(args)} timed out after {timeout}s") from exc
        if check and result.returncode != 0:
            raise KubectlError([tool, *args], result)
        return result

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT_S,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin (or with another ``kubeconfig``); raise on failure if check."""
        return self._run("kubectl", args, input, check, timeout, kubeconfig)

    def kubectl_json(self, *args: str, timeout: float = KUBECTL_TIMEOUT_S) -> dict[str, object]:
        out = self.kubectl(*args, "-o", "json", timeout=timeout).stdout
        data: dict[str, object] = json.loads(out)
        return data

    def helm(
        self, *args: str, check: bool = True, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        return self._run("helm", args, None, check, timeout)

    def token_kubeconfig(self, token: str, path: Path, user: str = "token-user") -> Path:
        """Write a kubeconfig that authenticates with a bearer ``token`` only (no client cert)."""
        write_kubeconfig(path, self.server, self.ca_cert, user, token=token)
        return path

    def readyz(self, timeout: float = 5.0) -> bool:
        return probe_readyz(self.server, self.pki_dir, timeout)


def admin_ssl_context(pki_dir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
    ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    return ctx


def probe_readyz(server: str, pki_dir: Path, timeout: float = 5.0) -> bool:
    """True when kube-apiserver answers /readyz with 200 ok (as the admin)."""
    try:
        with urllib.request.urlopen(
            f"{server}/readyz", timeout=timeout, context=admin_ssl_context(pki_dir)
        ) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def write_kubeconfig(
    path: Path,
    server: str,
    ca_cert: Path,
    user: str,
    *,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    token: str | None = None,
) -> None:
    """Write a single-context kubeconfig (JSON is valid kubeconfig YAML)."""
    creds: dict[str, str] = {}
    if client_cert is not None and client_key is not None:
        creds = {"client-certificate": str(client_cert), "client-key": str(client_key)}
    if token is not None:
        creds["token"] = token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "shards-local",
             "cluster": {"server": server, "certificate-authority": str(ca_cert)}},
        ],
        "users": [{"name": user, "user": creds}],
        "contexts": [
            {"name": f"{user}@shards-local", "context": {"cluster": "shards-local", "user": user}},
        ],
        "current-context": f"{user}@shards-local",
        "preferences": {},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(config, indent=2) + "\n")
