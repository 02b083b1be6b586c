"""A real SSH server on loopback whose commands run in a sandbox of stand-ins.

``SSHTarget`` prepares a sandbox directory (private /opt, /home, /tmp, a Ubuntu 24.04
/etc/os-release and the stand-in programs), starts OpenSSH's ``sshd`` on 127.0.0.1 with
``ForceCommand`` set to ``sandbox.sh`` and offers the hooks tests need: read the recorded
calls, make the next call of a stand-in fail, hang or cut the connection, and swap the
host key. Where ``/usr/sbin/sshd`` is absent an asyncssh server (``fallback_sshd.py``, its
own process) takes its place and runs each command through the same wrapper.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncssh

HERE = Path(__file__).resolve().parent
SANDBOX_WRAPPER = HERE / "sandbox.sh"
STANDINS = HERE / "standins" / "standins.py"
SSHD = Path("/usr/sbin/sshd")
COVERED_PROGRAMS = ("apt-get", "dpkg-query", "systemctl", "curl")
# Found before the real ones through PATH, once a test enables volumes.
VOLUME_PROGRAMS = ("blkid", "mkfs.ext4", "mount", "umount", "resize2fs", "e2fsck", "tune2fs", "cp")
# The server's accounts, kept in a state file rather than the machine's own /etc/passwd.
ACCOUNT_PROGRAMS = ("getent", "useradd", "groupadd")
DEVICE_PREFIX = "disk/by-id/scsi-0DO_Volume_"
# What a volume's device reads as: its first 2 MiB, zeros but for ext4's magic number
# once it holds a filesystem (as the stand-ins' mkfs.ext4 writes it).
DEVICE_BYTES = 2 * 1024 * 1024
EXT4_MAGIC_AT = 1080
FALLBACK_SSHD = HERE / "fallback_sshd.py"
OS_RELEASE = """\
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
"""

Backend = Literal["sshd", "asyncssh"]


def generate_key(path: Path) -> asyncssh.SSHKey:
    """Write a fresh ed25519 private key (OpenSSH format, mode 0600) to ``path``."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(key.export_private_key("openssh"))
    path.chmod(0o600)
    return key


def public_line(key: asyncssh.SSHKey) -> str:
    """``ssh-ed25519 AAAA…`` without a comment, as a server's host key is pinned."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_banner(
    port: int, deadline: float, server: subprocess.Popen[bytes] | None = None
) -> None:
    while True:
        if server is not None and server.poll() is not None:
            raise TimeoutError(f"the server for port {port} exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no SSH banner on 127.0.0.1:{port}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Canary:
    """A student's file in the sandbox's /home that nothing may touch."""

    path: Path
    original: bytes

    def intact(self) -> bool:
        return self.path.is_file() and self.path.read_bytes() == self.original


class SSHTarget:
    """One sandboxed loopback SSH server; ``start()`` then ``stop()``."""

    host = "127.0.0.1"

    def __init__(
        self,
        base: Path,
        host_key_path: Path,
        client_key: asyncssh.SSHKey,
        backend: Backend | None = None,
    ) -> None:
        self.base = base
        self.sandbox = base / "sandbox"
        self.sshd_dir = base / "sshd"
        self.client_key = client_key
        self.backend: Backend = backend or ("sshd" if SSHD.exists() else "asyncssh")
        self.port = free_port()
        self._host_key_path = host_key_path
        self._sshd: subprocess.Popen[bytes] | None = None
        self._build_sandbox()
        self.canary = self._plant_canary()

    # -- what tests read ------------------------------------------------------------

    @property
    def host_key(self) -> str:
        return public_line(asyncssh.read_private_key(self._host_key_path))

    def calls(self, program: str | None = None) -> list[dict]:
        """Every recorded stand-in call, oldest first (optionally of one program only)."""
        log = self.sandbox / "log" / "calls.jsonl"
        found = [json.loads(line) for line in log.read_text().splitlines() if line]
        return [c for c in found if program is None or c["program"] == program]

    def state(self, name: str) -> object:
        """A stand-in's state file (``apt``, ``conda``, ``pip-user``, ``services``, …)."""
        path = self.sandbox / "state" / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    @property
    def authorized_keys(self) -> Path:
        """The login user's ``~/.ssh/authorized_keys`` (the sandbox's ``/srv/root``)."""
        return self.sandbox / "root" / ".ssh" / "authorized_keys"

    def authorize(self, public_line: str) -> None:
        """Add a public key line to the keys the server trusts."""
        with self.authorized_keys.open("a") as file:
            file.write(public_line.strip() + "\n")

    def authorized_blobs(self) -> list[str]:
        """The keys the server trusts now (the base64 part of each line)."""
        lines = self.authorized_keys.read_text().splitlines()
        return [line.split()[1] for line in lines if len(line.split()) > 1]

    # -- block storage ----------------------------------------------------------------

    def attach_volume(self, name: str) -> Path:
        """Attach the volume ``name`` (made blank the first time); returns its folder.

        The first call turns on the sandbox's block storage: a private /mnt and
        /etc/fstab, /dev/disk/by-id, and stand-ins for blkid, mkfs.ext4, mount, resize2fs.
        """
        devices = self.sandbox / "devices"
        if not devices.exists():
            for sub in ("mnt", "volumes", "devices/upper/disk/by-id", "devices/work"):
                (self.sandbox / sub).mkdir(parents=True, exist_ok=True)
            (self.sandbox / "etc" / "fstab").write_text("# the sandbox's /etc/fstab\n")
            for program in (*VOLUME_PROGRAMS, *ACCOUNT_PROGRAMS):
                self._shim(program)
        folder = self.sandbox / "volumes" / name
        folder.mkdir(exist_ok=True)
        device = self.device(name)
        with open(device, "wb") as blank:
            blank.truncate(DEVICE_BYTES)
        path = self.sandbox / "state" / "filesystems.json"
        if path.exists() and name in json.loads(path.read_text()):
            self._write_magic(name)
        return folder

    def device(self, name: str) -> Path:
        """The file that plays the volume's device while it is attached."""
        return self.sandbox / "devices" / "upper" / f"{DEVICE_PREFIX}{name}"

    def _write_magic(self, name: str) -> None:
        if self.device(name).exists():
            with open(self.device(name), "r+b") as device:
                device.seek(EXT4_MAGIC_AT)
                device.write(b"\x53\xef")

    def detach_volume(self, name: str) -> None:
        """The volume leaves the server (its folder, the volume's data, stays)."""
        (self.sandbox / "devices" / "upper" / f"{DEVICE_PREFIX}{name}").unlink(missing_ok=True)

    def give_filesystem(self, name: str, uuid: str | None = None) -> str:
        """Make the volume ``name`` hold an ext4 filesystem already; returns its UUID.

        A volume made from a snapshot has the same filesystem, UUID included.
        """
        path = self.sandbox / "state" / "filesystems.json"
        filesystems = json.loads(path.read_text()) if path.exists() else {}
        fresh = uuid or secrets.token_hex(16)
        filesystems[name] = {"type": "ext4", "uuid": fresh, "grown": 0}
        path.write_text(json.dumps(filesystems))
        self._write_magic(name)
        return filesystems[name]["uuid"]

    def add_account(self, name: str, uid: int, gid: int) -> None:
        """A Linux user as TLJH makes one when a student first logs in (own group)."""
        path = self.sandbox / "state" / "accounts.json"
        found = json.loads(path.read_text()) if path.exists() else {"passwd": {}, "group": {}}
        found["group"][name] = gid
        found["passwd"][name] = [uid, gid]
        path.write_text(json.dumps(found))

    def keep_accounts(self) -> None:
        """Stand-ins for getent, useradd and groupadd from now on (as with volumes), so the
        server's groups live in the sandbox, never in the machine's own /etc/group."""
        for program in ACCOUNT_PROGRAMS:
            self._shim(program)

    def accounts(self) -> dict[str, tuple[int, int]]:
        """Every Linux user the server has: name -> (uid, gid)."""
        found = self.state("accounts") or {"passwd": {}}
        assert isinstance(found, dict)
        return {name: (uid, gid) for name, (uid, gid) in found["passwd"].items()}

    def replace_machine(self) -> None:
        """The droplet is gone and a new one answers at this address: an empty disk (no
        TLJH, no /home, no accounts, no mounts); volumes and their filesystems stay."""
        for sub in ("opt", "home", "etc/systemd-system"):
            shutil.rmtree(self.sandbox / sub)
            (self.sandbox / sub).mkdir()
        for name in ("accounts", "services", "pip-hub", "conda", "pip-user", "apt", "apt-updated"):
            (self.sandbox / "state" / f"{name}.json").unlink(missing_ok=True)
        (self.sandbox / "state" / "mounts.list").unlink(missing_ok=True)
        if (self.sandbox / "devices").exists():
            (self.sandbox / "etc" / "fstab").write_text("# the sandbox's /etc/fstab\n")
            for device in (self.sandbox / "devices" / "upper" / "disk" / "by-id").iterdir():
                device.unlink()

    def empty_home(self) -> None:
        """A new droplet: nothing in /home yet (the canary goes)."""
        shutil.rmtree(self.sandbox / "home" / "jupyter-student")

    # -- trouble on demand ------------------------------------------------------------

    def corrupt_next_copy(self) -> None:
        """The next ``cp`` (with volumes on) copies, then one copied file differs."""
        (self.sandbox / "control" / "cp.corrupt").write_text("")

    def fail_next(self, program: str, message: str = "", status: int = 1) -> None:
        """The next call of ``program`` prints ``message`` to stderr and exits ``status``."""
        (self.sandbox / "control" / f"{program}.fail-status").write_text(str(status))
        (self.sandbox / "control" / f"{program}.fail").write_text(
            message or f"{program}: injected failure"
        )

    def race_next_copy(self, elsewhere: str) -> None:
        """A student wins a race against the next ``cp`` of the stand-ins: its destination
        becomes a symbolic link to ``elsewhere`` (a path as the server sees it)."""
        (self.sandbox / "control" / "cp.race").write_text(elsewhere)

    def hub_starts(self) -> list[dict]:
        """Every start of the hub's unit the server made: by whom, whether
        /opt/tljh/state was a mount, the volume its marker named, whether it started."""
        found = self.state("hub-unit-starts") or []
        assert isinstance(found, list)
        return found

    def hang_next(self, program: str) -> None:
        """The next call of ``program`` sleeps until it is killed."""
        (self.sandbox / "control" / f"{program}.hang").write_text("")

    def cut_next(self, program: str) -> None:
        """The next call of ``program`` drops the SSH connection it runs in."""
        (self.sandbox / "control" / f"{program}.cut").write_text("")

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        # The free port may be taken between asking and binding: then try another.
        for attempt in range(3):
            try:
                return self._start_once()
            except RuntimeError:
                if attempt == 2:
                    raise
                self.port = free_port()

    def _start_once(self) -> None:
        if self.backend == "sshd":
            # sshd refuses to start without its privilege-separation directory.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            command = [str(SSHD), "-D", "-e", "-f", str(self._write_sshd_config())]
        else:
            command = [
                sys.executable,
                str(FALLBACK_SSHD),
                str(self.port),
                str(self._host_key_path),
                str(self.authorized_keys),
                str(self.sandbox),
            ]
        with open(self.sshd_dir / "sshd.log", "ab") as log:
            self._sshd = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            wait_for_banner(self.port, time.monotonic() + 15, self._sshd)
        except TimeoutError:
            self._sshd.kill()
            self._sshd.wait()
            self._sshd = None
            text = (self.sshd_dir / "sshd.log").read_text()
            raise RuntimeError(f"{command[0]} did not start on port {self.port}:\n{text}") from None

    def stop(self) -> None:
        if self._sshd is not None:
            self._sshd.terminate()
            try:
                self._sshd.wait(10)
            except subprocess.TimeoutExpired:
                self._sshd.kill()
                self._sshd.wait()
            self._sshd = None
        self._kill_hanging()

    def regenerate_host_key(self) -> str:
        """Restart the server on the same port with a new host key; return its line."""
        self.stop()
        self._host_key_path = self.sshd_dir / f"host_ed25519_{secrets.token_hex(4)}"
        generate_key(self._host_key_path)
        self.start()
        return self.host_key

    # -- internals --------------------------------------------------------------------

    def _build_sandbox(self) -> None:
        for sub in (
            "opt",
            "home",
            "tmp",
            "root",
            "log",
            "state",
            "control",
            "bin",
            "etc/systemd-system",
        ):
            (self.sandbox / sub).mkdir(parents=True, exist_ok=True)
        (self.sandbox / "tmp").chmod(0o1777)
        (self.sandbox / "etc" / "os-release").write_text(OS_RELEASE)
        (self.sandbox / "etc" / "skel").mkdir(exist_ok=True)
        (self.sandbox / "log" / "calls.jsonl").write_text("")
        shutil.copyfile(STANDINS, self.sandbox / "standins.py")
        for program in COVERED_PROGRAMS:
            self._shim(program)
        self.sshd_dir.mkdir(parents=True, exist_ok=True)
        # root's own authorized_keys (the sandbox's HOME), which sshd reads as a server's
        # sshd reads ~/.ssh/authorized_keys: what a command changes there counts.
        self.authorized_keys.parent.mkdir(mode=0o700)
        self.authorized_keys.write_text(self.client_key.export_public_key("openssh").decode())
        self.authorized_keys.chmod(0o600)

    def _shim(self, program: str) -> None:
        shim = self.sandbox / "bin" / program
        # Inside the namespace the sandbox is at /srv (see sandbox.sh).
        shim.write_text(
            f'#!/bin/sh\nexec /usr/bin/python3 -I /srv/standins.py /srv {program} "$@"\n'
        )
        shim.chmod(0o755)

    def _plant_canary(self) -> Canary:
        student = self.sandbox / "home" / "jupyter-student"
        student.mkdir(parents=True)
        path = student / "work.ipynb"
        original = secrets.token_bytes(4096)
        path.write_bytes(original)
        return Canary(path, original)

    def _write_sshd_config(self) -> Path:
        template = string.Template((HERE / "sshd_config.template").read_text())
        config = self.sshd_dir / "sshd_config"
        config.write_text(
            template.substitute(
                port=self.port,
                host_key=self._host_key_path,
                pid_file=self.sshd_dir / "sshd.pid",
                authorized_keys=self.authorized_keys,
                force_command=f"/bin/sh {SANDBOX_WRAPPER} {self.sandbox}",
            )
        )
        return config

    def _kill_hanging(self) -> None:
        for marker in (self.sandbox / "control").glob("hanging-*"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(marker.name.removeprefix("hanging-")), signal.SIGKILL)
            marker.unlink()
