"""The foundations' experiments: kNN, folds, gradient-descent regression, the two losses, the linear classifier, bad input."""

import numpy as np
import pytest

from common.errors import UserError
from helpers import assert_one_line_error, fake_mnist, run_command, run_subprocess
from projects.foundations import data, experiment, knn, linear_classifier, regression

COMMAND = "projects.foundations"


@pytest.mark.parametrize("metric", knn.METRICS)
def test_knn_equals_a_brute_force_numpy_reference_on_50_points(metric):
    rng = np.random.default_rng(0)
    references, labels = rng.integers(0, 256, (50, 16)), rng.integers(0, 4, 50)
    references[7] = references[3]  # an exact tie: the reference that comes first is the nearer
    queries = np.r_[rng.integers(0, 256, (19, 16)), references[3:4]]
    differences = queries[:, None, :].astype(np.int64) - references[None, :, :]
    reference = np.abs(differences).sum(2) if metric == "l1" else (differences**2).sum(2)
    order = np.argsort(reference, axis=1, kind="stable")[:, :9]

    found, indices = knn.nearest(queries, references, 9, metric, batch_size=8, dtype="int32")

    np.testing.assert_array_equal(indices, order)
    np.testing.assert_array_equal(found, np.take_along_axis(reference, order, axis=1))
    for k in range(1, 10):
        votes = [np.bincount(labels[row[:k]], minlength=4).argmax() for row in order]  # ties: the smallest label
        np.testing.assert_array_equal(knn.vote(labels[indices])[:, k - 1], votes)


@pytest.mark.backend_independent
def test_folds_never_share_an_example_and_cover_every_one_once():
    folds = data.folds(23, 5, seed=3)
    assert len(folds) == 5
    held_out = np.concatenate([held for _, held in folds])
    assert sorted(held_out) == list(range(23))  # each example validated on exactly once
    for fit, held in folds:
        assert not set(fit) & set(held)
        assert sorted(np.r_[fit, held]) == list(range(23))
        assert len(held) in (4, 5)


@pytest.mark.backend_independent
def test_knn_cross_validation_never_touches_the_test_set(monkeypatch, tmp_path):
    """Every distance the cross-validation asks for is between training images of different folds;
    the test images meet the training images once, in the test run after it."""
    (x_train, _), (x_test, _) = data.load_pixels("mnist", tiny=True)
    calls = []

    def recorded(queries, references, k, metric, batch_size, dtype="float32"):
        calls.append((queries, references))
        return np.zeros((len(queries), k)), np.zeros((len(queries), k), dtype=int)

    monkeypatch.setattr(knn, "nearest", recorded)
    knn.run(knn.Config(datasets=("mnist",), tiny=True, folds=3, max_k=3, cv_subset=300, check_train=50, check_test=20,
                       out=str(tmp_path / "run")))

    rows = lambda images: {image.tobytes() for image in images}
    training, test = rows(x_train), rows(x_test)
    assert training and test and not training & test
    folds, after = calls[: 3 * len(knn.METRICS)], calls[3 * len(knn.METRICS)]
    validated = set()
    for queries, references in folds:
        assert rows(queries) <= training and rows(references) <= training
        assert not rows(queries) & rows(references)
        validated |= rows(queries)
    assert len(validated) == 300  # each image of the subset validated on, in one fold or another
    assert rows(after[0]) == test and rows(after[1]) == training


def test_gradient_descent_reaches_the_closed_form_on_planted_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3)) * [1.0, 5.0, 0.2]
    y = 1.5 + x @ [2.0, -0.5, 4.0]
    rows = np.arange(60)
    linear, ridge = regression.Problem.linear(x, y, rows, 0.0), regression.Problem.linear(x, y, rows, 0.3)
    polynomial = regression.Problem.polynomial(x[:, 0], y, rows, 3, 0.01)

    fitted = regression.fit([linear, ridge, polynomial], steps=1000)

    spread = x[rows].std(0)
    np.testing.assert_allclose(fitted[0], np.r_[y[rows].mean(), [2.0, -0.5, 4.0] * spread], rtol=1e-4)  # the planted weights
    for problem, weights in zip((linear, ridge, polynomial), fitted):
        np.testing.assert_allclose(weights, problem.closed_form(), rtol=1e-4, atol=1e-5)
    assert np.linalg.norm(fitted[1][1:]) < np.linalg.norm(fitted[0][1:])  # the penalty shrinks the weights


def test_the_multiclass_svm_and_softmax_losses_equal_hand_computed_values():
    from keras import ops

    scores = ops.convert_to_tensor([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    labels = ops.convert_to_tensor([0, 1, 2])
    svm = ops.convert_to_numpy(linear_classifier.multiclass_svm_loss(labels, scores))
    softmax = ops.convert_to_numpy(linear_classifier.softmax_loss(labels, scores))
    # max(0, 5.1 - 3.2 + 1) + max(0, -1.7 - 3.2 + 1) = 2.9; 0 + 0; (2.2 + 3.1 + 1) + (2.5 + 3.1 + 1) = 12.9
    np.testing.assert_allclose(svm, [2.9, 0.0, 12.9], atol=1e-5)
    # log(e^3.2 + e^5.1 + e^-1.7) - 3.2 = log(188.73) - 3.2; log(145.35) - 4.9; log(21.25) + 3.1
    np.testing.assert_allclose(softmax, [2.0404, 0.0791, 6.1565], atol=1e-4)


def test_the_linear_classifier_learns_a_planted_separable_problem():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (1000, 12)).astype(np.float32)
    scores = (x / 255 - 0.5) @ rng.normal(size=(12, 3))
    ranked = np.sort(scores, axis=1)
    kept = ranked[:, -1] - ranked[:, -2] > 0.3  # a margin between the classes
    x, y = x[kept][:200], scores[kept][:200].argmax(1)
    config = linear_classifier.Config(epochs=15, batch_size=20, lr=0.1, l2=0.0)
    for loss in linear_classifier.LOSSES:
        model, history = linear_classifier.train(x, y, loss, config, classes=3)
        assert linear_classifier.accuracy(model, x, y) >= 0.97, loss
        assert history["loss"][-1] < history["loss"][0] / 3, loss


@pytest.mark.backend_independent
def test_report_writes_its_section_and_pictures_into_the_readme(tmp_path, monkeypatch):
    import pandas as pd

    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- knn:start -->\nold\n<!-- knn:end -->\nafter\n")
    monkeypatch.setattr(experiment, "FOLDER", tmp_path)
    report = experiment.Report("knn", knn.Config(readme=True, out=str(tmp_path / "run")))
    report.table("numbers", pd.DataFrame({"k": [1, 2], "accuracy": [0.5, 0.25]}), "Some numbers.")
    picture = report.picture_path("curve")
    picture.write_bytes(b"png")
    report.picture(picture, "a curve")
    report.finish("tiny")

    text = readme.read_text()
    assert "old" not in text and text.endswith("<!-- knn:end -->\nafter\n")
    assert "| k | accuracy |" in text and "![a curve](assets/knn_curve.png)" in text and "Measured by `make knn`" in text
    assert (tmp_path / "assets" / "knn_curve.png").read_bytes() == b"png"
    assert (tmp_path / "run" / "numbers.csv").is_file()


def test_regression_runs_end_to_end_on_tiny_data(tmp_path):
    out = tmp_path / "run"
    result = run_command(COMMAND, "regression", "--tiny", "--out", out, "--steps", "300", "--max-degree", "3",
                         "--ridge-degree", "3", "--lambdas", "0", "0.1", "--folds", "3")
    assert result.returncode == 0, result.stderr
    assert "By degree" in result.stdout and "Chosen by 3-fold cross-validation" in result.stdout
    assert {p.name for p in out.iterdir()} >= {"by_degree.csv", "by_lambda.csv", "against_scikit_learn.csv", "fits.png",
                                               "learning_rates.png"}


def test_knn_runs_end_to_end_on_tiny_data(tmp_path):
    out = tmp_path / "run"
    result = run_command(COMMAND, "knn", "--tiny", "--out", out, "--datasets", "mnist", "--folds", "2", "--max-k", "3",
                         "--cv-subset", "100", "--check-train", "60", "--check-test", "20")
    assert result.returncode == 0, result.stderr
    import pandas as pd

    test = pd.read_csv(out / "test.csv")
    assert test["test accuracy"].iloc[0] > 0.9  # the tiny classes are easy
    check = pd.read_csv(out / "against_scikit_learn_mnist.csv")
    assert (check["equal, int32"] == check["predictions"]).all()
    assert (out / "accuracy_mnist.png").is_file()


def test_linear_classifier_runs_end_to_end_on_tiny_data(tmp_path):
    out = tmp_path / "run"
    result = run_command(COMMAND, "linear-classifier", "--tiny", "--out", out, "--epochs", "2")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} >= {"accuracy.csv", "templates.png", "curves.png"}


@pytest.mark.backend_independent
def test_classic_ml_runs_end_to_end_on_tiny_data(tmp_path):
    out = tmp_path / "run"
    result = run_command(COMMAND, "classic-ml", "--tiny", "--out", out, "--folds", "3")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} >= {"pca.csv", "clustering.csv", "classifiers.csv", "evaluation.csv",
                                               "pca.png", "evaluation.png"}


@pytest.mark.backend_independent
@pytest.mark.parametrize("arguments, fragment", [
    (("knn", "--max-k", "0"), "--max-k must be at least 1"),
    (("knn", "--max-k", "9000"), "--max-k must be at most the training images"),
    (("knn", "--folds", "1"), "--folds must be at least 2"),
    (("knn", "--folds", "20", "--cv-subset", "10"), "--folds must be at least 2 and at most --cv-subset (10)"),
    (("regression", "--max-degree", "16"), "--max-degree must be from 1 to 15"),
    (("regression", "--ridge-degree", "0"), "--ridge-degree must be from 1 to 15"),
    (("regression", "--lambdas", "0.1", "-1"), "--lambdas must be from 0 to 1000"),
    (("regression", "--folds", "1"), "--folds must be at least 2"),
    (("regression", "--tiny", "--folds", "61"), "at most the number of training examples (60)"),
    (("regression", "--test-fraction", "1"), "--test-fraction must be between 0 and 1"),
    (("linear-classifier", "--lr", "0"), "--lr must be above 0"),
    (("linear-classifier", "--l2", "-1"), "--l2 must not be negative"),
    (("classic-ml", "--folds", "1"), "--folds must be at least 2"),
    (("classic-ml", "--tiny", "--folds", "50"), "at most the smallest class's size"),
    (("classic-ml", "--threshold", "1.5"), "--threshold must be between 0 and 1"),
])
def test_bad_settings_are_one_error_line(arguments, fragment, tmp_path):
    result = run_command(COMMAND, *arguments, "--out", tmp_path / "run")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.backend_independent
def test_a_subset_larger_than_the_data_set_is_one_error_line(tmp_path):
    fake_mnist(tmp_path / "mnist", train=40, test=10)
    result = run_command(COMMAND, "knn", "--data-dir", tmp_path, "--datasets", "mnist", "--cv-subset", "50",
                         "--folds", "2", "--max-k", "3", "--check-train", "20", "--out", tmp_path / "run")
    assert_one_line_error(result, "--cv-subset 50 is larger than the data set (40 examples)")
    assert not (tmp_path / "run").exists()


@pytest.mark.backend_independent
def test_a_bad_flag_is_one_error_line_with_no_traceback_in_a_fresh_process():
    assert_one_line_error(run_subprocess("-m", COMMAND, "regression", "--lambdas", "-1"), "--lambdas must be from 0 to 1000")
