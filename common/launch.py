"""Start a group of training processes on this machine, the way a cluster would start them.

    python -m common.launch --workers 2 -- projects.mnist_cnn train --distribute --tiny

starts `python -m projects.mnist_cnn train ...` twice on 127.0.0.1, each worker with
the variables a cluster manager would give it:

- TensorFlow (`MultiWorkerMirroredStrategy`): `TF_CONFIG`, the list of every
  worker's address and this worker's index in it;
- JAX (`jax.distributed` through `keras.distribution`): Keras' own
  `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator, worker 0, first),
  `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`.

Both are set, so the same command works under either backend. Every worker gets free
ports on the loopback interface and `--threads` compute threads (the cores shared out),
its output lines prefixed with its rank; when one worker fails the others are stopped
and the launcher exits with the first failure's status.

On several machines nobody runs this: each machine starts the same training command
with those variables set by hand, by Slurm or by Kubernetes (the README shows them).
`current_group()` reads them back in a worker. This module imports nothing but the
standard library, so it starts at once and answers its errors in one line.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

GRACE_SECONDS = 10  # how long a stopped worker may take to exit before it is killed


@dataclass(frozen=True)
class Group:
    """This process's place in a group of training processes: its rank, the group's size, the coordinator."""

    rank: int = 0
    size: int = 1
    coordinator: str = ""  # host:port of worker 0
    own_address: str = ""  # host:port this worker listens on (TensorFlow's workers each have one)

    @property
    def is_chief(self):
        return self.rank == 0

    @property
    def several(self):
        return self.size > 1


def current_group(backend=None, environ=None):
    """The group the environment describes for `backend` (default: $KERAS_BACKEND): `TF_CONFIG` on TensorFlow,
    Keras' variables on JAX; a group of one when neither is set."""
    environ = os.environ if environ is None else environ
    if environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or environ.get("TF_CONFIG"):
        backend = backend or environ.get("KERAS_BACKEND", "tensorflow")
        if backend != "tensorflow" or not environ.get("TF_CONFIG"):
            return _keras_group(environ)
        return _tf_config_group(environ["TF_CONFIG"])
    return Group()


def _keras_group(environ):
    try:
        size = int(environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
        rank = int(environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "0"))
    except ValueError:
        raise SystemExit("error: KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID must be whole numbers")
    addresses = [a for a in environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").split(",") if a]
    if size > 1 and not addresses:
        raise SystemExit("error: KERAS_DISTRIBUTION_JOB_ADDRESSES must name the coordinator (host:port of process 0)")
    if not 0 <= rank < size:
        raise SystemExit(f"error: KERAS_DISTRIBUTION_PROCESS_ID {rank} is outside 0..{size - 1}")
    own = addresses[rank] if len(addresses) == size else ""
    return Group(rank, size, addresses[0] if addresses else "", own)


def _tf_config_group(text):
    try:
        config = json.loads(text)
        workers = list(config["cluster"]["worker"])
        task = config["task"]
        rank = int(task["index"]) + (1 if task.get("type") == "worker" and "chief" in config["cluster"] else 0)
        workers = list(config["cluster"].get("chief", [])) + workers
    except (ValueError, KeyError, TypeError):
        raise SystemExit('error: TF_CONFIG must be JSON like {"cluster": {"worker": ["host:port", ...]}, '
                         '"task": {"type": "worker", "index": 0}}')
    if not 0 <= rank < len(workers):
        raise SystemExit(f"error: TF_CONFIG's task index {rank} is outside its {len(workers)} workers")
    return Group(rank, len(workers), workers[0], workers[rank])


def free_ports(count, host="127.0.0.1"):
    """`count` distinct ports nobody listens on now (the system picks them)."""
    sockets = []
    try:
        for _ in range(count):
            listener = socket.socket()
            listener.bind((host, 0))
            sockets.append(listener)
        return [listener.getsockname()[1] for listener in sockets]
    finally:
        for listener in sockets:
            listener.close()


def worker_environments(workers, threads, host="127.0.0.1", ports=None, base=None):
    """The environment of each worker: the cluster variables of both backends, and its thread counts."""
    ports = ports or free_ports(workers, host)
    addresses = [f"{host}:{port}" for port in ports]
    environments = []
    for rank in range(workers):
        env = dict(os.environ if base is None else base)
        env.update({
            "TF_CONFIG": json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": rank}}),
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(addresses),
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(workers),
            "KERAS_DISTRIBUTION_PROCESS_ID": str(rank),
            **thread_variables(threads, env),
            "PYTHONUNBUFFERED": "1",
        })
        env.pop("CPU_DEVICES", None)  # one device per worker: the group is the replication
        environments.append(env)
    return environments


def thread_variables(threads, env):
    """The variables that give a process `threads` compute threads on both backends (`env`: its other variables).

    They also fix how a computation's sums are split up, and so their rounding: a process
    on 2 devices computes exactly what 2 workers do only with the same threads per device.
    """
    return {
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": str(threads),
        "XLA_FLAGS": " ".join(filter(None, [env.get("XLA_FLAGS", ""), xla_thread_flags(threads)])),
    }


def xla_thread_flags(threads):
    """XLA's CPU backend runs one Eigen thread pool per process; with one thread it runs inline."""
    return "--xla_cpu_multi_thread_eigen=false" if threads == 1 else ""


class Launcher:
    """Runs the workers, relays their output line by line with a rank prefix, and stops them all on a failure."""

    def __init__(self, commands, environments, out=sys.stdout):
        self.commands, self.environments, self.out = commands, environments, out
        self.processes, self.lock = [], threading.Lock()

    def run(self):
        relays = []
        try:
            for rank, (command, env) in enumerate(zip(self.commands, self.environments)):
                process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
                self.processes.append(process)
                relay = threading.Thread(target=self._relay, args=(rank, process.stdout), daemon=True)
                relay.start()
                relays.append(relay)
            status = self._wait()
        finally:
            self.stop()
            for relay in relays:
                relay.join(timeout=5)
        return status

    def _relay(self, rank, stream):
        for line in iter(stream.readline, b""):
            with self.lock:
                self.out.write(f"[worker {rank}] {line.decode(errors='replace')}")
                self.out.flush()

    def _wait(self):
        """0 when every worker succeeded; else the status of the first to fail (128 + signal for a killed one)."""
        while True:
            codes = [process.poll() for process in self.processes]
            failed = [code for code in codes if code not in (None, 0)]
            if failed:
                code = failed[0]
                return 128 - code if code < 0 else code
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.1)

    def stop(self):
        """SIGTERM to every worker's process group still running, then SIGKILL after the grace period."""
        running = [p for p in self.processes if p.poll() is None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        for process in self.processes:  # whatever a worker started itself goes too
            _signal_group(process, signal.SIGKILL)


def _signal_group(process, number):
    try:
        os.killpg(process.pid, number)
    except (ProcessLookupError, PermissionError):
        pass


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m common.launch",
        description="Run a training command as a group of worker processes on 127.0.0.1.",
        epilog="example: python -m common.launch --workers 2 -- projects.mnist_cnn train --distribute --tiny",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes to start (default: 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="compute threads per worker (default: the cores shared out, at least 1)")
    parser.add_argument("module", help="the module to run, e.g. projects.mnist_cnn")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="its command and flags")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.exit(2, f"error: --workers must be at least 1, got {args.workers}\n")
    if args.threads is not None and args.threads < 1:
        parser.exit(2, f"error: --threads must be at least 1, got {args.threads}\n")
    if args.module.startswith("-") or not all(part.isidentifier() for part in args.module.split(".")):
        parser.exit(2, f"error: {args.module!r} is not a module name; put the command after --, "
                       "e.g. -- projects.mnist_cnn train --distribute\n")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    command = [sys.executable, "-m", args.module, *args.arguments]
    launcher = Launcher([command] * args.workers, worker_environments(args.workers, threads))
    # A launcher stopped by Ctrl-C or a job scheduler stops its workers on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        status = launcher.run()
    except KeyboardInterrupt:
        status = 130
    if status:
        print(f"error: a worker failed with exit status {status}; all {args.workers} stopped", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
