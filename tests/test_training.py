"""The shared training techniques (common/training.py), through the MNIST project: flags reach the optimizer
and the model, schedules give the rates they promise, tune searches on validation data, compare trains each variant."""

import argparse
import json
import math

import keras
import numpy as np
import pandas as pd
import pytest

from common import callbacks, cli, training, tune
from common.errors import UserError
from helpers import assert_one_line_error, run_command
from projects.captcha.train import Config as CaptchaConfig
from projects.imdb_sentiment.train import Config as ImdbConfig
from projects.mnist_cnn import FOLDER
from projects.mnist_cnn.model import build_model
from projects.mnist_cnn.train import Config

MNIST = "projects.mnist_cnn"


def config_from_flags(argv, config_class=Config):
    parser = argparse.ArgumentParser()
    cli.add_config_flags(parser, config_class)
    return cli.config_from_args(config_class, parser.parse_args(argv))


def rate(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step))) if callable(schedule) else float(schedule)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="JAX's Keras makes the optimizer's variables before tracing")
def test_a_compiled_model_traces_its_training_step_once():
    class Traced(keras.Sequential):
        def train_step(self, data):  # runs in Python only while TensorFlow traces it
            self.traces += 1
            return super().train_step(data)

    model = Traced([keras.Input((3,)), keras.layers.Dense(2)])
    model.traces = 0
    training.compiled(model, optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=[keras.metrics.MeanAbsoluteError()])
    model.fit(np.zeros((8, 3), np.float32), np.ones((8, 2), np.float32), batch_size=4, epochs=2, verbose=0)
    assert model.traces == 1
    with pytest.raises(TypeError, match="give the metrics"):
        training.compiled(model, optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="Keras' image transforms have no XLA kernel on TensorFlow")
def test_under_jax_a_model_with_random_image_transforms_compiles_its_training_step():
    model = build_model(Config(rotation=10, shift=0.1, zoom=0.1))
    assert {"RandomRotation", "RandomTranslation", "RandomZoom"} <= {type(layer).__name__ for layer in model._flatten_layers()}
    training.compiled(model, optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    assert model.jit_compile  # one compiled program a step, not every operation dispatched on its own
    images = np.random.default_rng(0).random((8, 28, 28, 1), np.float32)
    history = model.fit(images, np.arange(8) % 10, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_flags_reach_the_optimizer():
    config = config_from_flags(
        ["--optimizer", "momentum", "--lr", "0.1", "--lr-schedule", "piecewise", "--warmup", "0", "--weight-decay", "1e-4", "--clipnorm", "1.5"]
    )
    optimizer = training.build_optimizer(config, total_steps=100)
    assert type(optimizer) is keras.optimizers.SGD and optimizer.momentum == 0.9 and not optimizer.nesterov
    assert optimizer.weight_decay == pytest.approx(1e-4) and optimizer.global_clipnorm == 1.5
    assert [rate(optimizer._learning_rate, step) for step in (0, 50, 51, 76)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    expected = {"sgd": keras.optimizers.SGD, "nesterov": keras.optimizers.SGD, "adagrad": keras.optimizers.Adagrad,
                "rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}
    for name, kind in expected.items():
        optimizer = training.build_optimizer(config_from_flags(["--optimizer", name]), total_steps=100)
        assert type(optimizer) is kind and optimizer.weight_decay is None and optimizer.global_clipnorm is None
    assert training.build_optimizer(config_from_flags(["--optimizer", "nesterov"]), 100).nesterov


def test_weight_decay_shrinks_kernels_not_biases_or_normalisation():
    config = config_from_flags(["--optimizer", "sgd", "--lr", "0.1", "--lr-schedule", "constant", "--warmup", "0", "--weight-decay", "0.5"])
    optimizer = training.build_optimizer(config, total_steps=10)
    model = build_model(Config(augment=False))
    for variable in model.trainable_variables:  # batch normalisation starts at gamma 1, beta 0: give every weight a size
        variable.assign(np.ones(variable.shape, "float32"))
    optimizer.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in model.trainable_variables])  # decay alone moves them
    after = {v.path: float(keras.ops.convert_to_numpy(v).mean()) for v in model.trainable_variables}
    assert {path for path in after if path.endswith("kernel")} == {path for path, value in after.items() if value < 1}
    assert all(value == pytest.approx(1 - 0.1 * 0.5) for path, value in after.items() if path.endswith("kernel"))
    assert {path.rsplit("/", 1)[1] for path, value in after.items() if value == 1} == {"gamma", "beta", "bias"}


@pytest.mark.parametrize(
    "schedule, expected",  # lr 0.1, 100 steps, warm-up 10% where a schedule has one: {step: rate}
    [
        ("constant", {0: 0.0, 5: 0.05, 10: 0.1, 99: 0.1}),
        ("piecewise", {5: 0.05, 50: 0.1, 51: 0.01, 75: 0.01, 76: 0.001}),
        ("exponential", {5: 0.05, 50: 0.01, 100: 0.001}),
        ("cosine", {0: 0.0, 5: 0.05, 10: 0.1, 55: 0.05, 100: 0.0}),
        ("one-cycle", {0: 0.004, 30: 0.1, 65: 0.05, 100: 0.0}),
    ],
)
def test_schedule_values_at_given_steps(schedule, expected):
    learning_rate = training.learning_rate_schedule(Config(lr=0.1, lr_schedule=schedule, warmup=0.1), total_steps=100)
    assert {step: rate(learning_rate, step) for step in expected} == pytest.approx(expected, abs=1e-7)
    if callable(learning_rate):  # saved with best.keras: the schedule must come back the same
        restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(learning_rate))
        assert rate(restored, 7) == pytest.approx(rate(learning_rate, 7))


@pytest.mark.backend_independent
def test_project_defaults_keep_their_recipes():
    """MNIST and IMDB warm up over 5% then follow a cosine; captcha warms up over 3%; IMDB and captcha clip at 5."""
    for config, warmup_percent, clipnorm in ((Config(), 5, None), (ImdbConfig(), 5, 5.0), (CaptchaConfig(), 3, 5.0)):
        for total in (7, 100, 4460, 6000):
            optimizer = training.build_optimizer(config, total)
            schedule = optimizer._learning_rate
            assert type(optimizer) is keras.optimizers.Adam and optimizer.global_clipnorm == clipnorm
            warmup = max(1, total * warmup_percent // 100)
            assert (schedule.warmup_steps, schedule.decay_steps, schedule.warmup_target) == (warmup, total - warmup, config.lr)


@pytest.mark.backend_independent
def test_model_knobs_reach_the_layers():
    default = build_model(Config())
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in default.layers)
    assert all(type(layer.kernel_initializer).__name__ == "GlorotUniform" for layer in default.layers if hasattr(layer, "kernel"))
    plain = build_model(Config(initializer="he_normal", batch_norm=False, dropout=0.2))
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)
    weighted = [layer for layer in plain.layers if hasattr(layer, "kernel")]
    assert len(weighted) == 5 and all(type(layer.kernel_initializer).__name__ == "HeNormal" and layer.use_bias for layer in weighted)
    assert [layer.rate for layer in plain.layers if isinstance(layer, keras.layers.Dropout)] == [0.1, 0.2]
    small = build_model(Config(initializer="random_normal"))
    assert np.std(keras.ops.convert_to_numpy(small.layers[-2].kernel)) == pytest.approx(0.01, rel=0.2)


def test_early_stopping_stops_and_is_not_taken_for_a_nan(tmp_path):
    run_callbacks, _ = callbacks.standard(tmp_path, 4, 64, monitor="val_accuracy", patience=2)
    stopper = [c for c in run_callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    assert len(stopper) == 1 and stopper[0].patience == 2 and stopper[0].restore_best_weights
    assert not any(isinstance(c, keras.callbacks.EarlyStopping) for c in callbacks.standard(tmp_path, 4, 64, patience=2)[0])

    x, y = np.random.default_rng(0).normal(size=(64, 3)).astype("float32"), np.zeros(64, "int32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy", metrics=["accuracy"])
    stopping = [keras.callbacks.TerminateOnNaN(), stopper[0]]
    model.fit(x, y, validation_data=(x, y), epochs=10, callbacks=stopping, verbose=0)  # nothing improves
    assert model.stop_training and stopper[0].stopped_epoch == 2 and not callbacks.diverged(model, stopping)
    x[5] = np.nan
    model.fit(x, y, epochs=3, callbacks=[keras.callbacks.TerminateOnNaN()], verbose=0)
    assert callbacks.diverged(model, [keras.callbacks.TerminateOnNaN()])


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "settings, message",
    [
        ({"optimizer": "adamw"}, "--optimizer must be one of adagrad, adam, momentum, nesterov, rmsprop, sgd; got 'adamw'"),
        ({"lr_schedule": "linear"}, "--lr-schedule must be one of constant, piecewise, exponential, cosine, one-cycle"),
        ({"lr": -0.1}, "--lr must be positive"),
        ({"warmup": 1.5}, "--warmup must be in [0, 1)"),
        ({"weight_decay": -1e-4}, "--weight-decay must not be negative, got -0.0001"),
        ({"early_stopping": 3, "val_split": 0.0}, "--early-stopping watches the validation split"),
        ({"initializer": "ones"}, "--initializer must be one of"),
    ],
)
def test_bad_settings_are_clear_errors(settings, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Config(**settings)


@pytest.mark.backend_independent
def test_config_files_are_checked(tmp_path):
    def read(content):
        (tmp_path / "c.json").write_text(json.dumps(content))
        return cli.read_config_file(tmp_path / "c.json", Config)

    assert read({"config": {"lr": 1, "out": "runs/old", "optimizer": "sgd"}}) == {"lr": 1.0, "optimizer": "sgd"}
    for content, message in [
        ({"lrr": 0.1}, "unknown setting lrr; the settings are"),
        ({"batch_size": 2.5}, "batch_size must be int, got 2.5"),
        ({"augment": "yes"}, "augment must be bool"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of constant, piecewise"),
        ([1, 2], "holds no settings"),
    ]:
        with pytest.raises(UserError, match=message):
            read(content)


@pytest.mark.backend_independent
def test_search_spaces_parse_and_refuse_empty_ones():
    base = {k: v for k, v in vars(Config()).items()}
    space = tune.parse_space(["lr=log:1e-4:1e-1", "batch-size=int:32:512", "dropout=float:0:0.5", "optimizer=adam,momentum", "augment=true,false"], Config)
    assert space["lr"] == tune.Range(1e-4, 1e-1, log=True) and space["batch_size"] == tune.Range(32, 512, integer=True)
    assert space["dropout"] == tune.Range(0, 0.5) and space["optimizer"] == tune.Choice(("adam", "momentum"))
    assert space["augment"] == tune.Choice((True, False))
    tune.check_space(space, Config, base)
    import optuna

    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    drawn = {name: spec.suggest(trial, name) for name, spec in space.items()}
    assert 1e-4 <= drawn["lr"] <= 1e-1 and isinstance(drawn["batch_size"], int) and 32 <= drawn["batch_size"] <= 512
    assert drawn["optimizer"] in ("adam", "momentum") and drawn["augment"] in (True, False)
    assert trial.distributions["lr"].log and not trial.distributions["dropout"].log

    for texts, message in [
        ([], "the search space is empty: nothing to tune; give --space NAME=log:LOW:HIGH"),
        (["lr=log:1e-2:1e-4"], "--space lr: the range 0.01..0.0001 is empty"),
        (["optimizer="], "--space optimizer: no options to choose from"),
        (["lr=log:0:1"], "a log range needs positive bounds"),
        (["learning_rate=log:1e-4:1e-2"], "'learning_rate' is not a setting; the settings are"),
        (["optimizer=adam,adamw"], "--optimizer must be one of adagrad, adam"),
        (["lr=float:-1:1"], "--lr must be positive"),
        (["optimizer=log:1:2"], "takes choices"),
        (["batch_size=64,lots"], "'lots' is not a whole number"),
    ]:
        with pytest.raises(UserError, match=message.replace("(", r"\(")):
            tune.check_space(tune.parse_space(texts, Config), Config, base)


@pytest.mark.backend_independent
def test_bad_config_file_and_flags_are_one_line_through_the_cli(tmp_path):
    (tmp_path / "bad.json").write_text('{"optimizer": "adamw"}')
    result = run_command(MNIST, "train", "--config", tmp_path / "bad.json", "--out", tmp_path / "run")
    assert_one_line_error(result, "optimizer must be one of adagrad, adam, momentum, nesterov, rmsprop, sgd")
    assert not (tmp_path / "run").exists()
    result = run_command(MNIST, "tune", "--tiny", "--space", "dropout=float:0.5:0.1", "--out", tmp_path / "tune")
    assert result.returncode == 2 and result.stderr.strip() == "error: --space dropout: the range 0.5..0.1 is empty (low > high)"
    assert not (tmp_path / "tune").exists()
    for flag, value, accepted in (("--optimizer", "adamw", "'adagrad', 'adam', 'momentum'"), ("--lr-schedule", "linear", "'constant', 'piecewise'")):
        result = run_command(MNIST, "train", flag, value)
        error = assert_one_line_error(result, f"error: argument {flag}: invalid choice: '{value}'", accepted)
        assert result.returncode == 2 and result.stderr.strip() == error


SEARCHED = ["lr", "batch_size", "lr_schedule", "warmup", "weight_decay", "dropout"]  # the project's search space


@pytest.mark.backend_independent
def test_tune_records_trials_and_best_config_that_train_takes(tmp_path):
    tune_dir, readme = tmp_path / "tune", (FOLDER / "README.md").read_bytes()
    result = run_command(MNIST, "tune", "--tiny", "--no-augment", "--batch-size", "512", "--trials", "2", "--trial-epochs", "1",
                         "--readme", "--out", tune_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_csv(tune_dir / "trials.csv")
    assert list(trials["trial"]) == ["default", "t1", "t2"] and list(trials.columns[1:7]) == SEARCHED
    assert trials.loc[0, "lr"] == Config.lr and trials.loc[0, "batch_size"] == 512  # the recipe the flags describe
    assert trials["lr"].nunique() == 3  # each trial drew its own learning rate
    for row in trials.itertuples():
        trial_dir = tune_dir / row.trial
        used = json.loads((trial_dir / "config.json").read_text())["config"]
        assert {name: used[name] for name in SEARCHED} == {name: getattr(row, name) for name in SEARCHED}
        assert used["epochs"] == 1 and not used["final_test"]
        # Scored on validation data only, by the trial's best epoch: the test set is never touched.
        assert row.score == pytest.approx(pd.read_csv(trial_dir / "metrics.csv")["val_accuracy"].max())
        assert json.loads((trial_dir / "summary.json").read_text())["metrics"] == {}
        assert not (trial_dir / "samples" / "test_predictions.png").exists()
    best = json.loads((tune_dir / "best.json").read_text())
    winner = trials[trials["trial"] != "default"].sort_values("score", ascending=False).iloc[0]
    assert {name: best[name] for name in SEARCHED} == {name: winner[name] for name in SEARCHED}
    assert best["epochs"] == Config.epochs and best["final_test"] and best["tiny"] and not best["augment"]
    assert (FOLDER / "README.md").read_bytes() == readme  # --tiny is no measurement

    result = run_command(MNIST, "train", "--config", tune_dir / "best.json", "--epochs", "1", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    used = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert {k: v for k, v in used.items() if k not in ("out", "epochs")} == {k: v for k, v in best.items() if k != "epochs"}
    assert set(json.loads((tmp_path / "run" / "summary.json").read_text())["metrics"]) == {"test_accuracy", "test_loss"}


@pytest.mark.backend_independent
def test_compare_commands_train_each_variant_and_write_their_pictures_and_tables(tmp_path):
    tiny = ["--tiny", "--epochs", "1", "--batch-size", "256"]
    assert run_command(MNIST, "compare-optimizers", *tiny, "--out", tmp_path / "optimizers").returncode == 0
    assert run_command(MNIST, "compare-init", *tiny, "--out", tmp_path / "init").returncode == 0
    for folder, pictures in (("optimizers", ["curves.png"]), ("init", ["curves.png", "activations.png"])):
        for picture in pictures:
            assert (tmp_path / folder / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    optimizers = pd.read_csv(tmp_path / "optimizers" / "results.csv")
    assert list(optimizers["optimizer"]) == ["sgd", "momentum", "adagrad", "rmsprop", "adam"]
    assert list(optimizers["learning rate"]) == [0.01, 0.01, 0.01, 0.001, 0.001]
    assert optimizers["final train loss"].nunique() == 5  # the same start and batches: each optimizer made its own steps

    init = pd.read_csv(tmp_path / "init" / "results.csv")
    assert list(zip(init["initialisation"], init["activation"])) == [
        (shown, activation) for activation in ("sigmoid", "relu") for shown in ("zeros", "N(0, 0.01²)", "Xavier", "He")
    ]
    losses = init.set_index(["initialisation", "activation"])["final train loss"]
    for activation in ("sigmoid", "relu"):  # all-zero weights learn nothing: every class stays at 1/10
        assert math.isclose(losses["zeros", activation], math.log(10), rel_tol=0.01)
    assert losses["He", "relu"] < math.log(10) - 0.1  # a good start learns within these few steps
