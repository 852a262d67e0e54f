"""A real etcd + kube-apiserver for tests, started the way controller-runtime's envtest does.

    KUBEBUILDER_ASSETS/{etcd,kube-apiserver} ─► etcd on tmpfs ─► kube-apiserver (TLS, RBAC, static tokens)
                                                                  └─► kubeconfigs: admin, and any user

No controller-manager runs: nothing garbage-collects owner references, no namespace is ever finalized,
no service account token is minted. Static tokens stand in for service accounts: a token whose user is
`system:serviceaccount:<ns>:<name>` is authorized by RBAC exactly like that service account.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.ports import free_port as _free_port

__all__ = ["ApiServer", "User"]


@dataclass(frozen=True)
class User:
    name: str
    token: str
    groups: tuple[str, ...] = ()


ADMIN = User("quote-test-admin", "admin-token-0123456789", ("system:masters",))


@dataclass
class ApiServer:
    """Owns the two processes and their temporary directory; `stop()` removes everything."""

    assets: Path
    users: tuple[User, ...] = (ADMIN,)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="quote-apiserver-", dir=_tmpfs())))
    url: str = ""
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, timeout_s: float = 90.0) -> ApiServer:
        etcd_port, peer_port, secure_port = _free_port(), _free_port(), _free_port()
        self._spawn("etcd", _etcd_args(self.workdir, etcd_port, peer_port))
        self._write_credentials()
        self.url = f"https://127.0.0.1:{secure_port}"
        self._spawn("kube-apiserver", _apiserver_args(self.workdir, etcd_port, secure_port))
        self._wait_ready(timeout_s)
        return self

    def stop(self) -> None:
        for proc in reversed(self._procs):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def kubeconfig(self, user: User = ADMIN) -> Path:
        """A kubeconfig file for `user` (written once)."""
        path = self.workdir / f"kubeconfig-{user.name.replace(':', '-')}"
        if not path.exists():
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "envtest",
                        "cluster": {"server": self.url, "certificate-authority": str(self.workdir / "ca.crt")},
                    }
                ],
                "users": [{"name": user.name, "user": {"token": user.token}}],
                "contexts": [
                    {"name": "envtest", "context": {"cluster": "envtest", "user": user.name, "namespace": "default"}}
                ],
                "current-context": "envtest",
            }
            path.write_text(yaml.safe_dump(config))
        return path

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, binary: str, args: list[str]) -> None:
        log = (self.workdir / f"{binary}.log").open("wb")
        self._procs.append(subprocess.Popen([str(self.assets / binary), *args], stdout=log, stderr=subprocess.STDOUT))

    def _write_credentials(self) -> None:
        _write_tls(self.workdir)
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.workdir / "sa.key").write_bytes(_pem_key(sa_key))
        (self.workdir / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        lines = [f'{u.token},{u.name},{u.name},"{",".join(u.groups)}"' for u in self.users]
        (self.workdir / "tokens.csv").write_text("\n".join(lines) + "\n")

    def _wait_ready(self, timeout_s: float) -> None:
        context = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        request = urllib.request.Request(f"{self.url}/readyz", headers={"Authorization": f"Bearer {ADMIN.token}"})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self._procs):
                raise RuntimeError(
                    f"envtest process exited:\n{self.log('etcd')[-2000:]}\n{self.log('kube-apiserver')[-4000:]}"
                )
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"kube-apiserver not ready after {timeout_s}s:\n{self.log('kube-apiserver')[-4000:]}")


def _tmpfs() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _etcd_args(workdir: Path, port: int, peer_port: int) -> list[str]:
    return [
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{port}",
        f"--advertise-client-urls=http://127.0.0.1:{port}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
    ]


def _apiserver_args(workdir: Path, etcd_port: int, port: int) -> list[str]:
    return [
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--cert-dir={workdir / 'certs'}",
        f"--tls-cert-file={workdir / 'serving.crt'}",
        f"--tls-private-key-file={workdir / 'serving.key'}",
        f"--client-ca-file={workdir / 'ca.crt'}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        "--insecure-port=0",
        "--service-cluster-ip-range=10.0.0.0/24",
        f"--service-account-issuer=https://127.0.0.1:{port}",
        f"--service-account-key-file={workdir / 'sa.pub'}",
        f"--service-account-signing-key-file={workdir / 'sa.key'}",
        f"--token-auth-file={workdir / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--disable-admission-plugins=ServiceAccount",
        "--enable-priority-and-fairness=false",
    ]


def _write_tls(workdir: Path) -> None:
    """A CA and a serving certificate for 127.0.0.1/localhost, so clients verify TLS for real."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quote-envtest-ca")])
    ca = _certificate(ca_name, ca_name, ca_key, ca_key, ca=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    serving = _certificate(name, ca_name, key, ca_key, ca=False, sans=sans)
    (workdir / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (workdir / "serving.crt").write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    (workdir / "serving.key").write_bytes(_pem_key(key))


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    signer: rsa.RSAPrivateKey,
    *,
    ca: bool,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
        .add_extension(_key_usage(ca), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
