"""Connecting to a Ray cluster: the one place that imports ``ray`` for zsl's distributed paths.

``zsl extract --ray-address`` (:mod:`zsl.features.ray_extract`) and ``zsl benchmark --ray-address``
(:mod:`zsl.bench.ray_runner`) both go through :func:`ray_cluster`, which

* imports ``ray`` or raises the one-line error naming the extra (``pip install 'zsl[ray]'``),
* connects to the cluster at the given address (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``, or
  ``local`` for a throw-away one-machine instance), turning a failed connection into one line that
  says how to start a cluster,
* passes the driver's ``ZSL_*`` variables (data and cache roots) to the job's workers when asked,
* disconnects on exit when it made the connection (a caller that is already connected keeps it).

What a multi-machine cluster needs (nothing here can check it up front): zsl installed in the same
Python environment on every node, and for extraction the image paths readable under the same
names on every node (a shared file system); see docs/scale.md.
"""
from __future__ import annotations

import contextlib
import logging
import os

from .errors import ZSLError, require_extra


def is_loopback(address: str) -> bool:
    """True for ``local`` and for addresses on this machine's loopback interface (127.x, localhost)."""
    host = address.strip().removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return address.strip() == "local" or host in ("localhost", "::1") or host.startswith("127.")


def require_ray(address: str | None = None):
    """The ``ray`` module, or a one-line :class:`ZSLError` naming the extra that installs it.

    For a loopback ``address`` (or ``local``) Ray is first put in its single-machine mode: otherwise
    it replaces 127.0.0.1 by the address of the machine's network interface and talks to that. The
    switch is read when Ray is imported, so it only works when this is the first import of ``ray``.
    """
    import sys

    if address is not None and is_loopback(address):
        os.environ.setdefault(LOOPBACK_ENV, "0")
    # no usage reports from zsl's drivers (Ray would otherwise start an actor to collect them)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = require_extra("ray", "ray")
    constants = sys.modules.get("ray._private.ray_constants")
    if address is not None and is_loopback(address) and getattr(constants, "ENABLE_RAY_CLUSTER", False):
        raise ZSLError(f"ray was imported before zsl could keep it on loopback for {address}; set "
                       f"{LOOPBACK_ENV}=0 in the environment, or call "
                       f"zsl.distributed.require_ray({address!r}) before importing ray")
    return ray


#: Ray's switch for its single-machine mode, in which every address is 127.0.0.1 (the name is historical)
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def check_address(address: str, *, flag: str = "--ray-address") -> str:
    """A non-empty address string (Ray validates the rest when connecting)."""
    if not isinstance(address, str) or not address.strip():
        raise ZSLError(
            f"{flag} must be a Ray cluster address (auto, HOST:PORT, ray://HOST:PORT or local), got {address!r}"
        )
    return address.strip()


@contextlib.contextmanager
def ray_cluster(address: str, *, flag: str = "--ray-address", worker_env: bool = False):
    """Connected to the Ray cluster at ``address`` for the block; yields the ``ray`` module.

    ``worker_env``: give the job's workers the driver's ``ZSL_*`` variables (data and cache roots).
    Off for extraction, whose workers need neither: a job with its own environment cannot use the
    workers Ray keeps started, and every worker then starts from scratch.
    """
    address = check_address(address, flag=flag)
    ray = require_ray(address)
    if ray.is_initialized():
        yield ray
        return
    kwargs = {}
    if address == "local":
        kwargs["include_dashboard"] = False
    elif is_loopback(address):
        # a cluster on loopback: this driver registers (and is reached) on loopback too
        kwargs["_node_ip_address"] = "127.0.0.1"
    _check_reachable(address, flag)
    zsl_env = {k: v for k, v in os.environ.items() if k.startswith("ZSL_")}
    if worker_env and zsl_env:  # the job's workers see the driver's data and cache roots (not the env `ray start` had)
        kwargs["runtime_env"] = {"env_vars": zsl_env}
    try:
        ray.init(address=address, logging_level=logging.WARNING, **kwargs)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, ValueError, RuntimeError: whatever Ray raises, one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ZSLError(f"{flag} {address}: cannot connect to a Ray cluster ({first[:160]}); start one with "
                       "`ray start --head --port 6379` and pass the address "
                       "it prints (or 'local' for a one-machine instance)") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str, flag: str, timeout: float = 10.0) -> None:
    """A ``HOST:PORT`` address must accept a TCP connection: Ray itself would retry for minutes."""
    import socket

    host, sep, port = address.rpartition(":")
    if address.startswith("ray://") or not sep or not port.isdigit():
        return  # auto, local, or Ray Client: Ray reports those quickly itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ZSLError(f"{flag} {address}: cannot connect to a Ray cluster ({exc.strerror or exc}); start one with "
                       "`ray start --head --port 6379` and pass the address "
                       "it prints (or 'local' for a one-machine instance)") from None


def cluster_cpus(ray) -> int:
    """CPUs the connected cluster offers (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on the loopback interface right now."""
    import socket

    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class LocalCluster:
    """A one-node Ray cluster on loopback, started with ``ray start --head`` (for tests, benchmarks, trials).

    ``LocalCluster(num_cpus=2, temp_dir=PATH)``: every port is picked free on 127.0.0.1 (so several
    clusters on one machine do not collide) and ``temp_dir`` holds its session. ``address`` is what
    ``--ray-address`` takes. :meth:`stop` ends exactly this cluster: ``ray start --block`` runs in a
    process group of its own, which is signalled (TERM, then KILL), and any process still naming
    this cluster's temp folder is ended by its pid -- never ``ray stop``, which ends every Ray process
    on the machine, other users' clusters included. Use it as a context manager.
    """

    def __init__(self, num_cpus: int = 2, temp_dir: str | os.PathLike | None = None, *, timeout: float = 120.0):
        import shutil
        import subprocess
        import sys
        import tempfile
        import time
        from pathlib import Path

        require_ray("local")
        # Ray puts unix sockets under the temp folder; their paths must stay under 108 bytes
        self._own_temp = temp_dir is None  # a folder made here is removed by stop()
        self.temp_dir = Path(temp_dir) if temp_dir else Path(tempfile.mkdtemp(prefix="zray-", dir="/tmp"))
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        gcs, node_mgr, obj_mgr, agent_listen, agent_grpc, rt_env, metrics, dashboard = _free_ports(8)
        self.address = f"127.0.0.1:{gcs}"
        ray_bin = Path(sys.executable).with_name("ray")
        cmd = [
            str(ray_bin) if ray_bin.exists() else shutil.which("ray") or "ray", "start", "--head", "--block",
            "--node-ip-address", "127.0.0.1", "--port", str(gcs), "--num-cpus", str(int(num_cpus)), "--num-gpus", "0",
            "--node-manager-port", str(node_mgr), "--object-manager-port", str(obj_mgr),
            "--dashboard-agent-listen-port", str(agent_listen), "--dashboard-agent-grpc-port", str(agent_grpc),
            "--runtime-env-agent-port", str(rt_env), "--metrics-export-port", str(metrics), "--include-dashboard",
            "false", "--dashboard-port", str(dashboard), "--disable-usage-stats", "--temp-dir", str(self.temp_dir),
        ]
        self.log_path = self.temp_dir / "ray-start.log"
        self._log = open(self.log_path, "wb")
        # Ray swaps a loopback --node-ip-address for the machine's network address unless it runs in
        # its single-machine mode: everything stays on 127.0.0.1
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", LOOPBACK_ENV: "0"}
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while True:  # ready once the node has written its address file and the GCS answers
            if self.proc.poll() is not None:
                self._log.close()
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise ZSLError(f"ray start failed (exit {self.proc.returncode}): {' | '.join(tail)}")
            if "Ray runtime started" in self.log_path.read_text(errors="replace"):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise ZSLError(f"ray start did not come up within {timeout:.0f} s; see {self.log_path}")
            time.sleep(0.2)

    def worker_pids(self, name_part: str = "") -> list[int]:
        """Pids of this cluster's Ray worker processes (``ray::...`` titles) containing ``name_part``."""
        return [pid for pid, title in self._processes() if title.startswith("ray::") and name_part in title]

    def _processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every live process of this cluster: its process group, their
        descendants (the raylet's workers), and any process naming its temp folder."""
        info: dict[int, tuple[int, int, str]] = {}  # pid -> (parent, group, command line)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[-1].split()
                if fields[0] == b"Z":
                    continue  # a zombie is already dead (its parent reaps it)
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
                info[pid] = (int(fields[1]), int(fields[2]), cmdline)
            except (OSError, IndexError, ValueError):
                continue
        marker = str(self.temp_dir)
        ours = {pid for pid, (_, group, cmd) in info.items() if group == self.proc.pid or marker in cmd}
        grew = True
        while grew:  # add descendants
            new = {pid for pid, (parent, _, _) in info.items() if parent in ours and pid not in ours}
            ours |= new
            grew = bool(new)
        ours.discard(os.getpid())
        return [(pid, info[pid][2]) for pid in sorted(ours)]

    def stop(self, grace: float = 5.0) -> None:
        """End this cluster's processes: TERM to its process group, KILL after ``grace`` seconds."""
        import signal
        import time

        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (self.proc.poll() is None or self._processes()):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid, _ in self._processes():  # stragglers of this cluster that left its group, by pid
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=grace)
        except Exception:  # noqa: BLE001 - already reaped or stuck in the kernel: nothing more to do
            pass
        if not self._log.closed:
            self._log.close()
        if self._own_temp:
            import shutil

            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["LOOPBACK_ENV", "LocalCluster", "check_address", "cluster_cpus", "is_loopback", "ray_cluster", "require_ray"]
