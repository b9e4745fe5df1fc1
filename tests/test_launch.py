"""The launcher and the group plumbing, without training: what a cluster's variables mean, how a
group is started and stopped, how each worker's share of a batch is chosen, and the one-line errors.

Groups that really train (two processes on 127.0.0.1, both backends) are in
tests/distributed/, run by `make test-distributed`.
"""

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from common.launch import Group, current_group, worker_environments

TIME_LIMIT = 120  # seconds for any process a test starts


def run(argv, env=None, timeout=TIME_LIMIT):
    return subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def one_error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


@pytest.mark.backend_independent
def test_the_variables_describe_the_group_on_each_backend():
    environments = worker_environments(3, threads=1, ports=[4001, 4002, 4003], base={})
    assert [current_group("tensorflow", env) for env in environments] == [
        Group(rank, 3, "127.0.0.1:4001", f"127.0.0.1:{4001 + rank}") for rank in range(3)
    ]
    assert [current_group("jax", env).rank for env in environments] == [0, 1, 2]
    assert all(current_group("jax", env).coordinator == "127.0.0.1:4001" for env in environments)
    assert "CPU_DEVICES" not in environments[0] and environments[0]["TF_NUM_INTRAOP_THREADS"] == "1"
    assert current_group("tensorflow", {}) == Group() and not Group().several
    chief_and_worker = {"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}
    assert current_group("tensorflow", {"TF_CONFIG": json.dumps(chief_and_worker)}) == Group(1, 2, "a:1", "b:2")


@pytest.mark.backend_independent
@pytest.mark.parametrize("variables, message", [
    ({"TF_CONFIG": "{not json"}, "TF_CONFIG must be JSON"),
    ({"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}})}, "outside its 1 workers"),
])
def test_a_bad_tf_config_is_one_line(variables, message):
    with pytest.raises(SystemExit, match=message):
        current_group("tensorflow", variables)


@pytest.mark.backend_independent
@pytest.mark.parametrize("flags, message", [
    (["--workers", "0", "--", "projects.mnist_cnn", "train"], "--workers must be at least 1, got 0"),
    (["--workers", "-2", "--", "projects.mnist_cnn", "train"], "--workers must be at least 1, got -2"),
    (["--workers", "2", "projects mnist"], "is not a module name"),
])
def test_bad_launcher_flags_are_one_line(flags, message):
    assert message in one_error_line(run([sys.executable, "-m", "common.launch", *flags]))


WORKER = '''
import os, subprocess, sys, time
rank = int(os.environ["KERAS_DISTRIBUTION_PROCESS_ID"])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.path.join(sys.argv[1], f"worker{rank}.pids"), "w") as pids:
    pids.write(f"{os.getpid()} {child.pid}")
print(f"ready {os.environ['KERAS_DISTRIBUTION_NUM_PROCESSES']}", flush=True)
time.sleep(600)
'''


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited; only its parent's wait is missing
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.backend_independent
def test_killing_one_worker_ends_the_group_and_leaves_no_process(tmp_path):
    (tmp_path / "sleepy_worker.py").write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    launcher = subprocess.Popen([sys.executable, "-m", "common.launch", "--workers", "2", "--", "sleepy_worker", str(tmp_path)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("worker*.pids"))) < 2:
            assert time.monotonic() < deadline and launcher.poll() is None, "the workers did not start"
            time.sleep(0.1)
        pids = {rank: [int(p) for p in (tmp_path / f"worker{rank}.pids").read_text().split()] for rank in (0, 1)}
        os.kill(pids[1][0], signal.SIGKILL)
        out, err = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGKILL
    assert "[worker 0] ready 2" in out and "[worker 1] ready 2" in out
    assert "error: a worker failed with exit status 137; all 2 stopped" in err
    time.sleep(0.5)
    assert not [pid for group in pids.values() for pid in group if alive(pid)]


@pytest.mark.backend_independent
def test_a_worker_that_fails_sets_the_launchers_status(tmp_path):
    (tmp_path / "failing_worker.py").write_text("import os, sys\nsys.exit(3 if os.environ['KERAS_DISTRIBUTION_PROCESS_ID'] == '1' else 0)\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = run([sys.executable, "-m", "common.launch", "--workers", "2", "--", "failing_worker"], env)
    assert result.returncode == 3 and "exit status 3" in result.stderr


def test_the_workers_read_disjoint_halves_of_every_global_batch():
    from common.distributed import GlobalBatches

    examples = np.arange(50)
    whole = GlobalBatches([examples], batch_size=10, epochs=2, seed=7)
    halves = [GlobalBatches([examples], batch_size=10, epochs=2, seed=7, rank=rank, group_size=2) for rank in (0, 1)]
    assert len(whole) == 10 and whole.steps_per_epoch == 5
    # Keras reads a PyDataset on several threads when its `workers` is above 1: reads could then
    # reach the step out of turn. One thread, whatever the size of the group.
    assert halves[0].workers == 1 and not halves[0].use_multiprocessing
    for item in range(len(whole)):
        (batch,) = whole[item]
        assert np.array_equal(np.concatenate([half[item][0] for half in halves]), batch)
    first_epoch = np.concatenate([whole[item][0] for item in range(5)])
    second_epoch = np.concatenate([whole[item][0] for item in range(5, 10)])
    assert sorted(first_epoch) == sorted(second_epoch) == list(range(50)) and not np.array_equal(first_epoch, second_epoch)
    resumed = GlobalBatches([examples], batch_size=10, epochs=2, seed=7)
    resumed.first_epoch = 1  # a run resumed at its second epoch reads what the uninterrupted one read there
    assert np.array_equal(np.concatenate([resumed[item][0] for item in range(5)]), second_epoch)


class Padded(keras.utils.PyDataset):
    """Batches of 4 rows padded to a width that changes with the batch, in an order that changes every epoch."""

    def __init__(self, workers=1):
        super().__init__(workers=workers)
        self.epoch = 0

    def __len__(self):
        return 3

    def __getitem__(self, index):
        start = 10 * self.epoch + 4 * index
        return np.arange(start, start + 4)[:, None] * np.ones((1, 2 + index)), np.arange(start, start + 4)

    def on_epoch_end(self):
        self.epoch += 1


@pytest.mark.parametrize("threads", [1, 2])
def test_shares_split_a_project_s_own_batches_epoch_after_epoch(threads):
    from common.distributed import Shares

    halves = [Shares(Padded(threads), epochs=2, rank=rank, group_size=2) for rank in (0, 1)]
    whole = Padded()
    assert len(halves[0]) == 6 and halves[0].steps_per_epoch == 3
    for item in range(6):
        if item == 3:
            whole.on_epoch_end()
        x, y = whole[item % 3]
        assert np.array_equal(np.concatenate([half[item][1] for half in halves]), y)
        assert np.array_equal(np.concatenate([half[item][0] for half in halves]), x)
    resumed = Shares(Padded(), epochs=2, rank=1, group_size=2)
    resumed.first_epoch = 1  # a resumed run's first item is of the dataset's second epoch
    assert np.array_equal(resumed[0][1], halves[1][3][1])
    assert [shape for shape, _ in halves[0].signature()] == [(None, None), (None,)]  # the width varies
    assert halves[0].workers == 1


def test_stream_shares_split_each_batch_and_serve_a_reader_that_starts_over():
    from common.distributed import StreamShares

    def stream():  # endless global batches of 4 examples: a dict of arrays, as word2vec's
        for step in itertools.count():
            yield ({"words": np.arange(4 * step, 4 * step + 4)[:, None] * np.ones((1, 3), np.int32)},)

    halves = [StreamShares(stream(), steps_per_epoch=3, epochs=2, rank=rank, group_size=2, kept=4) for rank in (0, 1)]
    assert len(halves[0]) == 6
    assert halves[0].signature() == [{"words": ((None, 3), np.dtype("int64"))}]
    for item in range(5):
        words = np.concatenate([half[item][0]["words"][:, 0] for half in halves])
        assert list(words) == list(range(4 * item, 4 * item + 4))
    assert list(halves[1][1][0]["words"][:, 0]) == [6, 7]  # read again: the same batch, not the stream's next
    with pytest.raises(RuntimeError, match="batch 0 of the stream is gone"):
        halves[0][0]


def test_a_batch_that_does_not_split_over_the_workers_is_refused():
    from common.distributed import GlobalBatches
    from common.errors import UserError

    with pytest.raises(UserError, match="--batch-size 9 must be a multiple of the 2 workers"):
        GlobalBatches([np.arange(20)], batch_size=9, epochs=1, seed=0, group_size=2)


def group_of_two(rank, ports):
    """The variables of worker `rank` of a group of two whose addresses use `ports`."""
    return {key: value for key, value in worker_environments(2, 1, ports=ports, base={})[rank].items()
            if key not in ("XLA_FLAGS",)}


TRAIN = [sys.executable, "-m", "projects.mnist_cnn", "train", "--tiny", "--epochs", "1", "--distribute"]


def test_a_worker_without_its_group_stops_within_the_time_limit_naming_the_coordinator(tmp_path):
    ports = _free_ports(2)
    started = time.monotonic()
    result = run([*TRAIN, "--out", str(tmp_path / "run")], {**group_of_two(1, ports), "WORKER_CONNECT_SECONDS": "5"}, timeout=90)
    line = one_error_line(result)
    assert f"could not form its group with the coordinator at 127.0.0.1:{ports[0]} within 5 s" in line
    assert time.monotonic() - started < 60
    assert not (tmp_path / "run").exists()


def test_a_port_that_is_taken_is_named_at_once(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = [taken.getsockname()[1], _free_ports(1)[0]]
        result = run([*TRAIN, "--out", str(tmp_path / "run")], group_of_two(0, ports), timeout=90)
    assert f"cannot listen on 127.0.0.1:{ports[0]}" in one_error_line(result)


@pytest.mark.backend_independent
def test_a_group_member_must_be_asked_to_distribute(tmp_path):
    result = run([*TRAIN[:-1], "--out", str(tmp_path / "run")], {**group_of_two(0, _free_ports(2)), "WORKER_CONNECT_SECONDS": "3"})
    line = one_error_line(result)
    assert "worker 0 of 2" in line and "--distribute is not; add it" in line


@pytest.mark.backend_independent
def test_a_project_without_distribution_refuses_the_flag():
    result = run([sys.executable, "-m", "projects.flappy_dqn", "train", "--tiny", "--distribute"])
    assert "unrecognized arguments: --distribute" in one_error_line(result)


def _free_ports(count):
    from common.launch import free_ports

    return free_ports(count)


@pytest.mark.backend_independent
def test_a_project_that_trains_in_one_process_refuses_a_group():
    result = run([sys.executable, "-m", "projects.flappy_dqn", "train", "--tiny"], group_of_two(1, _free_ports(2)))
    assert "flappy_dqn trains in one process only" in one_error_line(result)
