"""The Ray instance a ``--executor ray`` bench runs on: found, checked, started and stopped here.

- no address (or ``local``): a private Ray instance on this machine, started for the bench and shut down at
  its end. Ray is told ``address="local"``, so the record a dead cluster leaves in Ray's temp folder
  (``ray/ray_current_cluster``) is never read.
- ``auto``: the cluster ``ray start`` recorded on this machine (Ray's own rule: $RAY_ADDRESS, else that
  record, else the one Ray cluster running here).
- ``host:port``: a cluster's GCS; ``ray://host:port``: a cluster through Ray Client (``ray[client]``).

An address is checked, within ``timeout`` seconds, before ``ray.init`` sees it: given a dead or unreachable
GCS, ``ray.init`` retries for many minutes and prints Ray's connection warnings all the while.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from zoo.errors import ZooError

DEFAULT_TIMEOUT = 30.0

# Run in a child process so that a GCS that accepts connections but never answers cannot hang zoo (the
# child is killed at the deadline) and Ray's C++ warnings go to a pipe, not to the terminal.
_GCS_CHECK = """
import json, sys
try:
    from ray._raylet import GcsClient
    from ray.core.generated.gcs_pb2 import GcsNodeInfo
    nodes = GcsClient(address=sys.argv[1]).get_all_node_info(
        timeout=float(sys.argv[2]), state_filter=GcsNodeInfo.GcsNodeState.ALIVE)
    print(json.dumps({"alive": len(nodes)}))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": (str(exc).splitlines() or [""])[0]}))
"""


@dataclass
class RaySession:
    description: str  # where the jobs run, for the bench's log
    logs: str  # Ray's log folder, named when a job fails


@dataclass
class Target:
    address: str | None  # None: a private instance
    where: str  # the address and where it came from, for messages
    auto: bool = False  # found the way ray.init(address="auto") finds it
    private: str = "leave --address out"  # how to run on a private instance instead


def resolve(address: str | None, source: str = "--address") -> Target:
    """What ``address`` (given as --address, or read from RAY_ADDRESS) names."""
    if address in (None, "", "local"):
        return Target(None, "a private Ray instance")
    if address != "auto" and source == "RAY_ADDRESS":
        return Target(address, f"RAY_ADDRESS={address}", private="pass --address local")
    if address != "auto":
        return Target(address, f"--address {address}")
    from ray._private import services, utils

    env = os.environ.get("RAY_ADDRESS")
    if env and env not in ("auto", "local"):
        return Target(env, f"--address auto (RAY_ADDRESS={env}, which auto follows as Ray does)",
                      private="pass --address local")
    recorded = utils.read_ray_address()
    if recorded:
        return Target(recorded, f"--address auto ({recorded}, recorded by 'ray start' in "
                                f"{utils.get_ray_address_file(None)})", auto=True)
    running = sorted(services.find_gcs_addresses())
    if len(running) == 1:
        return Target(running[0], f"--address auto ({running[0]}, the Ray cluster running on this machine)", auto=True)
    if not running:
        raise ZooError("--address auto: no Ray cluster runs on this machine (start one with 'ray start --head', "
                       "or leave --address out to run on a private Ray instance)")
    raise ZooError(f"--address auto: {len(running)} Ray clusters run on this machine ({', '.join(running)}): "
                   "pass one of them as --address")


def _host_port(target: Target) -> tuple[str, int]:
    rest = target.address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ZooError(f"{target.where}: a Ray address is host:port or ray://host:port (or auto, or local)")
    return host.strip("[]"), int(port)


def check(target: Target, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Raise a one-line ZooError unless a live Ray cluster answers at the target within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    host, port = _host_port(target)
    where = target.where
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except ConnectionRefusedError:
        raise ZooError(f"{where}: nothing listens at {host}:{port} (a Ray cluster that died leaves its address "
                       f"behind; start it again, or {target.private} to run on a private Ray instance)") from None
    except TimeoutError:
        raise ZooError(f"{where}: {host}:{port} did not answer within {timeout:g} s (--ray-timeout)") from None
    except OSError as exc:
        raise ZooError(f"{where}: cannot reach {host}:{port}: {exc.strerror or exc}") from None
    if "://" in target.address:
        return  # a Ray Client server, not a GCS: ray.init checks the rest
    left = max(deadline - time.monotonic(), 0.1)
    try:
        proc = subprocess.run([sys.executable, "-c", _GCS_CHECK, f"{host}:{port}", str(left)], capture_output=True,
                              text=True, timeout=left)
    except subprocess.TimeoutExpired:
        raise ZooError(f"{where}: no Ray GCS answered at {host}:{port} within {timeout:g} s (--ray-timeout)") from None
    lines = proc.stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result = json.loads(lines[-1])
    else:
        result = {"error": f"the check exited {proc.returncode}",
                  "message": (proc.stderr.strip().splitlines() or [""])[-1][:300]}
    if result.get("alive"):
        return
    if result.get("error") == "AuthenticationError":
        if target.auto:
            return  # alive: ray.init(address="auto") uses this machine's token, as for any 'ray start' cluster
        raise ZooError(f"{where}: the cluster asks for a token: set RAY_AUTH_MODE=token and give its token in "
                       "~/.ray/auth_token or $RAY_AUTH_TOKEN")
    if "alive" in result:
        raise ZooError(f"{where}: the Ray cluster at {host}:{port} has no live node")
    raise ZooError(f"{where}: no Ray GCS answers at {host}:{port}: {result['error']}: {result['message']}")


@contextmanager
def ray_session(address: str | None = None, *, source: str = "--address", timeout: float = DEFAULT_TIMEOUT,
                num_cpus: int | None = None, env_vars: dict[str, str] | None = None) -> Iterator[RaySession]:
    """Connect to (or start) Ray for the duration of the block; a Ray the caller initialised is left alone."""
    import ray

    if ray.is_initialized():
        yield RaySession("the Ray instance this process already uses", _logs_dir())
        return
    target = resolve(address, source)
    kwargs = {"log_to_driver": False, "logging_level": logging.ERROR, "runtime_env": {"env_vars": env_vars or {}}}
    if target.address is None:
        kwargs.update(address="local", num_cpus=num_cpus, include_dashboard=False)
    else:
        check(target, timeout)
        # "auto" again after the check: only then does Ray use this machine's token for a local cluster
        kwargs["address"] = "auto" if target.auto else target.address
    try:
        ray.init(**kwargs)
    except Exception as exc:  # Ray's errors name the cause in their first line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ZooError(f"{target.where}: Ray could not {'start' if target.address is None else 'connect'}: "
                       f"{first}") from None
    try:
        resources = ray.cluster_resources()
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        shape = (f"{nodes} node{'s' * (nodes != 1)}, {resources.get('CPU', 0):g} CPUs, "
                 f"{resources.get('GPU', 0):g} GPUs")
        what = f"a private Ray instance ({shape}), stopped at the end" if target.address is None else \
            f"{target.where} ({shape})"
        yield RaySession(what, _logs_dir())
    finally:
        ray.shutdown()  # stops a private instance; from a cluster it only disconnects


def _logs_dir() -> str:
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    logs = node.get_logs_dir_path() if node is not None else None
    return logs or "/tmp/ray/session_latest/logs on the head node"
