"""A real OpenSSH server for the tests: on loopback, a free port, generated keys, a user of its own.

The user (``USER``, with its own home) is the remote account jobs run as; the
server accepts only that user and only with the generated client key. The
user and its home are kept between sessions, so the cumulo runtime installed
there on first use (a virtual environment with cumulo's requirements) is
reused; the keys are made anew each session (each session adds its client key
to the user's authorized keys, and removes it at its end).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

USER = "cumulo-ssh-test"
SSHD = "/usr/sbin/sshd"


def unavailable() -> str | None:
    """Why a test sshd cannot run here, or None."""
    if os.geteuid() != 0:
        return f"starting sshd with a user of its own ({USER}) needs root"
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        return "OpenSSH's server is not installed (make test installs openssh-server)"
    return None


@dataclass
class Sshd:
    host: str
    port: int
    user: str
    home: Path
    key_file: Path  # the client's private key
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(8).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not answer: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop the server and every connection it serves (each has a process of its own)."""
        if self.proc is None:
            return
        for pid in _descendants(self.proc.pid):
            _kill(pid)
        _kill(self.proc.pid)
        self.proc.wait(10)
        self.proc = None


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _ensure_user() -> pwd.struct_passwd:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/sh", USER],
            check=True,
            capture_output=True,
        )
    # No password, but not locked: sshd refuses a locked account even with a key.
    subprocess.run(["usermod", "--password", "*", USER], check=True, capture_output=True)
    return pwd.getpwnam(USER)


@contextmanager
def local_sshd(port: int, folder: Path) -> Iterator[Sshd]:
    """sshd on 127.0.0.1:``port``, its files in ``folder``; stopped at exit."""
    folder.mkdir(parents=True, exist_ok=True)
    user = _ensure_user()
    home = Path(user.pw_dir)
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(folder / name)],
            check=True,
        )
    dot_ssh = home / ".ssh"
    dot_ssh.mkdir(mode=0o700, exist_ok=True)
    keys = dot_ssh / "authorized_keys"
    line = (folder / "client_key.pub").read_text().strip()
    _edit_keys(keys, lambda lines: [*lines, line])  # test sessions side by side add their own
    for path in (dot_ssh, keys):
        os.chown(path, user.pw_uid, user.pw_gid)
    keys.chmod(0o600)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {folder / 'host_key'}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        f"AllowUsers {USER}\n"
        "AuthorizedKeysFile .ssh/authorized_keys\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin no\n"
        "UsePAM no\n"
        "MaxStartups 100\n"
        "MaxSessions 100\n"
        "Subsystem sftp internal-sftp\n"
    )
    server = Sshd("127.0.0.1", port, USER, home, folder / "client_key", config, folder / "sshd.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        _edit_keys(keys, lambda lines: [x for x in lines if x != line])


def _edit_keys(keys: Path, change: Callable[[list[str]], list[str]]) -> None:
    with open(keys, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        lines = [x for x in fh.read().splitlines() if x.strip()]
        fh.seek(0)
        fh.truncate()
        fh.write("".join(f"{x}\n" for x in change(lines)))
