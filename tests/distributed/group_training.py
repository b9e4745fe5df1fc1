"""Groups that really train: two worker processes on 127.0.0.1, started by `common.launch`.

Run by `make test-distributed` under each backend (a few minutes: every group compiles
its model twice over, on two shared cores), after the unit suite. Every process a test
starts runs under a time limit and is stopped with the test.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.launch import GRACE_SECONDS, thread_variables

TIME_LIMIT = 300  # seconds for one group
TRAIN = ["projects.mnist_cnn", "train", "--tiny", "--distribute", "--no-augment", "--batch-size", "64", "--no-final-test"]
# IMDB and captcha make their own batches (common.distributed.Shares); poems carry sample weights; word2vec's
# examples are an endless stream of dicts of arrays (StreamShares).
MORE_PROJECTS = {
    "imdb_lstm": ["projects.imdb_sentiment", "train", "--tiny", "--distribute", "--units", "16", "--batch-size", "40",
                  "--lr", "1e-2", "--no-final-test"],
    "captcha": ["projects.captcha", "train", "--tiny", "--distribute", "--alphabet", "1W", "--length", "1", "--input-height", "16",
                "--rnn-units", "16", "--batch-size", "16", "--lr", "0.01", "--no-mixed-precision", "--no-final-test"],
    "tang_poetry": ["projects.tang_poetry", "train", "--tiny", "--distribute", "--units", "16", "--embedding-dim", "8",
                    "--batch-size", "16", "--no-final-test"],
    "word2vec": ["projects.word2vec", "train", "--tiny", "--distribute", "--vector-size", "16"],
}

CUSTOM_STEPS = {  # each project's tiny run, what its model file is called, and the rows its metrics.csv ends with
    "dcgan": (["projects.dcgan", "train", "--tiny", "--distribute", "--batch-size", "16", "--width", "8", "--discriminator-width", "8"],
              "generator.keras", 2),
    "style_transfer": (["projects.style_transfer", "train", "--tiny", "--distribute", "--backbone", "vgg16", "--backbone-weights",
                        "random", "--content-layers", "block2_conv2", "--style-layers", "block1_conv2,block2_conv2", "--filters", "4",
                        "--residual-blocks", "1"], "model.keras", 2),
    "animegan": (["projects.animegan", "train", "--tiny", "--distribute", "--backbone", "vgg16", "--backbone-weights", "random",
                  "--epochs", "2", "--init-epochs", "1", "--steps-per-epoch", "2", "--d-warmup-steps", "1", "--batch-size", "2"],
                 "model.keras", 3),
}


@pytest.fixture
def folders(tmp_path):
    """Where the group may write: its run folders, the workers' temporary folders, and the check files."""
    paths = {name: tmp_path / name for name in ("runs", "tmp", "check")}
    for path in paths.values():
        path.mkdir()
    env = {**os.environ, "RUNS_DIR": str(paths["runs"]), "TMPDIR": str(paths["tmp"]), "DISTRIBUTED_CHECK_DIR": str(paths["check"])}
    return paths, env


def launch(env, *flags, train=TRAIN):
    return subprocess.Popen([sys.executable, "-m", "common.launch", "--workers", "2", "--", *train, *flags],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process):
    try:
        out, _ = process.communicate(timeout=TIME_LIMIT)
    finally:
        process.kill()
    return out


def weights(check, rank):
    with np.load(check / f"worker{rank}-weights.npz") as saved:
        return [saved[key] for key in sorted(saved.files, key=lambda key: int(key[1:]))]


def assert_identical_workers(check):
    for first, second in zip(weights(check, 0), weights(check, 1), strict=True):
        np.testing.assert_allclose(first, second, rtol=0, atol=1e-6)


def assert_equal_to_one_process_on_two_devices(paths, env, train=TRAIN):
    """The chief's weights are those one process on 2 logical CPU devices trains for two epochs with the same
    flags and one compute thread, like each worker."""
    check = env["DISTRIBUTED_CHECK_DIR"] + "-reference"
    reference_env = {**env, "CPU_DEVICES": "2", "DISTRIBUTED_CHECK_DIR": check, **thread_variables(1, env)}
    process = subprocess.Popen([sys.executable, "-m", *train, "--epochs", "2", "--out", str(paths["tmp"].parent / "reference")],
                               env=reference_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = finish(process)
    assert process.returncode == 0, out[-3000:]
    for group_weight, reference_weight in zip(weights(paths["check"], 0), weights(Path(check), 0), strict=True):
        np.testing.assert_allclose(group_weight, reference_weight, rtol=0, atol=1e-5)


def test_two_workers_train_to_identical_weights_and_only_the_chief_writes(folders):
    paths, env = folders
    run_dir = paths["runs"] / "group"
    group = launch(env, "--epochs", "2", "--out", str(run_dir))
    out = finish(group)
    assert group.returncode == 0, out[-3000:]

    assert_identical_workers(paths["check"])
    assert_equal_to_one_process_on_two_devices(paths, env)
    reads = [np.load(paths["check"] / f"worker{rank}-reads.npy") for rank in (0, 1)]
    per_epoch = len(reads[0]) // 2
    train_images = int(out.split(" train, ")[0].rsplit(" ", 1)[-1])
    train_images -= train_images % 2  # trimmed to a multiple of the two replicas
    for epoch in (0, 1):
        shares = [read[epoch * per_epoch:(epoch + 1) * per_epoch] for read in reads]
        assert not np.intersect1d(*shares).size, "the workers read the same examples"
        assert np.union1d(*shares).size == train_images
    assert_only_the_chief_wrote(paths, run_dir, out)


@pytest.mark.parametrize("project", sorted(MORE_PROJECTS))
def test_more_projects_train_a_group_as_one_process(folders, project):
    """Reviews padded per batch (IMDB) and captchas drawn on two threads per batch (captcha), through `Shares`;
    poems with their padding weighted out, through `GlobalBatches`; word2vec's stream through `StreamShares`."""
    paths, env = folders
    run_dir = paths["runs"] / "group"
    train = MORE_PROJECTS[project]
    group = launch(env, "--epochs", "2", "--out", str(run_dir), train=train)
    out = finish(group)
    assert group.returncode == 0, out[-3000:]
    assert_identical_workers(paths["check"])
    assert_equal_to_one_process_on_two_devices(paths, env, train)
    if project == "word2vec":
        assert_only_the_chief_wrote(paths, run_dir, out, model="vectors.bin", saved="vectors saved in")
    else:
        assert_only_the_chief_wrote(paths, run_dir, out)


def custom_steps(folder, rank=0):
    with np.load(folder / f"worker{rank}.npz") as saved:
        return {key: saved[key] for key in saved.files}


def test_custom_steps_in_a_group_take_the_whole_batch_s_steps(folders):
    """`backend.gradient_step` in two processes, each on half of every batch, takes the steps one process takes on
    the whole batch; with batch normalisation (statistics per share) the workers still end identical."""
    paths, env = folders
    program = ["tests.distributed.custom_steps"]
    alone = subprocess.run([sys.executable, "-m", *program, str(paths["check"] / "alone")], env=env, capture_output=True,
                           text=True, timeout=TIME_LIMIT)
    assert alone.returncode == 0, alone.stderr[-3000:]
    for flags in ([], ["--batch-norm"]):
        folder = paths["check"] / ("group" + "".join(flags))
        group = launch(env, *flags, train=[*program, str(folder)])
        out = finish(group)
        assert group.returncode == 0, out[-3000:]
        workers = [custom_steps(folder, rank) for rank in (0, 1)]
        for key in workers[0]:
            np.testing.assert_array_equal(workers[0][key], workers[1][key], err_msg=key)
        assert list(workers[0]["share"]) == [8]  # each worker computed on half of every batch of 16
        if not flags:
            for key, value in custom_steps(paths["check"] / "alone").items():
                if key != "share":
                    np.testing.assert_allclose(workers[0][key], value, rtol=0, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("project", sorted(CUSTOM_STEPS))
def test_a_custom_step_project_trains_in_a_group(folders, project):
    """Through the shared loop: every network, optimiser and weight average ends identical on both workers."""
    paths, env = folders
    run_dir = paths["runs"] / "group"
    train, model, rows = CUSTOM_STEPS[project]
    epochs = [] if project == "animegan" else ["--epochs", "2"]
    group = launch(env, *epochs, "--out", str(run_dir), train=train)
    out = finish(group)
    assert group.returncode == 0, out[-3000:]
    assert_identical_workers(paths["check"])
    assert_only_the_chief_wrote(paths, run_dir, out, model=model, rows=rows)


def assert_only_the_chief_wrote(paths, run_dir, out, model="model.keras", rows=2, saved="run saved in"):
    """The chief wrote a whole run (two epochs); worker 1 wrote into a temporary folder, gone with it."""
    assert [p.name for p in paths["runs"].iterdir()] == ["group"]
    assert {"config.json", "metrics.csv", model, "summary.json"} <= {p.name for p in run_dir.iterdir()}
    assert len(pd.read_csv(run_dir / "metrics.csv")) == rows
    assert f"[worker 0] {saved} {run_dir}" in out
    worker_folder = out.split(f"[worker 1] {saved} ")[1].split()[0]
    assert worker_folder.startswith(str(paths["tmp"])) and not os.path.exists(worker_folder)
    assert not list(paths["tmp"].iterdir()), "a worker left files behind"


# The tiny DCGAN's epochs take under a second: enough of them that it is stopped before the end.
@pytest.mark.parametrize("train, epochs", [(TRAIN, 10), (CUSTOM_STEPS["dcgan"][0], 30)], ids=["mnist_cnn", "dcgan"])
def test_the_group_resumes_after_it_was_stopped(folders, train, epochs):
    paths, env = folders
    run_dir = paths["runs"] / "group"
    group = launch(env, "--epochs", str(epochs), "--out", str(run_dir), train=train)
    try:
        deadline = time.monotonic() + TIME_LIMIT
        while not ((run_dir / "metrics.csv").is_file() and len((run_dir / "metrics.csv").read_text().splitlines()) >= 3):
            assert group.poll() is None and time.monotonic() < deadline, "the group ended before it could be stopped"
            time.sleep(0.2)
        group.send_signal(signal.SIGTERM)  # the launcher stops both workers
        asked = time.monotonic()
        out = finish(group)
        stopping = time.monotonic() - asked
    finally:
        group.kill()
    assert group.returncode != 0 and not (run_dir / "summary.json").exists(), out[-3000:]
    # The workers end on SIGTERM itself, not on the SIGKILL that follows it after the grace period.
    assert stopping < GRACE_SECONDS, f"the group took {stopping:.0f} s to stop"

    resumed = launch(env, "--resume", str(run_dir), train=train)
    out = finish(resumed)
    assert resumed.returncode == 0, out[-3000:]
    assert f"[worker 0] resuming {run_dir}" in out and f"[worker 1] resuming {run_dir}" in out
    logged = pd.read_csv(run_dir / "metrics.csv")["epoch"].tolist()
    assert logged[:2] == [0, 1] and logged[-1] == epochs - 1 and len(set(logged)) == epochs
    assert len(logged) < 2 * epochs, "the resumed group started over"
    assert (run_dir / "summary.json").is_file()
    assert_identical_workers(paths["check"])
