"""The classical methods: PCA, k-means and EM, six classifiers under one cross-validation, ROC and precision-recall.

With scikit-learn on three data sets it ships: iris (150 flowers, 4 measurements,
3 species), breast cancer (569 tumours, 30 measurements, malignant or benign) and
digits (1,797 digits of 8 x 8 pixels). Features are standardised, always by
statistics of the examples a model is fitted on (inside each fold). `--tiny` puts
generated sets of the same shapes in their place.
"""

import time
from dataclasses import dataclass

import numpy as np

from common.config import option
from common.errors import UserError
from projects.foundations import data
from projects.foundations.experiment import ExperimentConfig, Report

# What each step shows, in the course's words.
NOTES = {
    "pca": "PCA finds the orthogonal directions along which the data vary most; projecting on the first two draws "
           "a data set on a page, keeping the share of the variance they explain.",
    "clustering": "k-means and a Gaussian mixture fitted by expectation-maximisation group the examples without "
                  "seeing a label; the adjusted Rand index says how well the groups match the classes (1: exactly, 0: chance).",
    "classifiers": "No classifier wins everywhere: compared under the same cross-validation folds, the simple ones "
                   "(naive Bayes, a tree) trail where the classes need a smooth boundary that kNN, the SVMs and logistic regression draw.",
    "evaluation": "Accuracy hides which mistakes are made: the ROC curve (true- against false-positive rate) and the "
                  "precision-recall curve show every threshold at once, and the confusion matrix one threshold's errors.",
}
POSITIVE = "malignant"  # the class a breast-cancer test looks for


@dataclass(frozen=True)
class Config(ExperimentConfig):
    folds: int = option(5, "folds of the cross-validation (stratified; at least 2, at most the smallest class's size)")
    threshold: float = option(0.5, "probability of malignancy above which a tumour counts as malignant (0 to 1)")

    def __post_init__(self):
        if self.folds < 2:
            raise UserError(f"--folds must be at least 2, got {self.folds}")
        if not 0 < self.threshold < 1:
            raise UserError(f"--threshold must be between 0 and 1, got {self.threshold}")


def classifiers(seed):
    """The six classifiers compared, each standardising its features first."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    models = {
        "naive Bayes (Gaussian)": GaussianNB(),
        "linear SVM": LinearSVC(random_state=seed),
        "RBF SVM": SVC(kernel="rbf"),
        "decision tree": DecisionTreeClassifier(random_state=seed),
        "kNN (k = 5)": KNeighborsClassifier(5),
        "logistic regression": LogisticRegression(max_iter=2000),
    }
    return {name: make_pipeline(StandardScaler(), model) for name, model in models.items()}


def run(config):
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    tables = {name: data.sklearn_table(name, config.tiny, config.seed) for name in data.SKLEARN_TABLES}
    smallest = min(np.bincount(y).min() for _, y, _ in tables.values())
    if config.folds > smallest:
        raise UserError(f"--folds must be at most the smallest class's size ({smallest}), got {config.folds}")
    folds = StratifiedKFold(config.folds, shuffle=True, random_state=config.seed)
    report = Report("classic-ml", config)

    report.note(f"**PCA.** {NOTES['pca']}")
    report.table("pca", pd.DataFrame([pca_row(name, x) for name, (x, _, _) in tables.items()]),
                 "Share of the variance along the first two principal components (standardised features).",
                 float_format="{:.3f}".format)
    report.picture(plot_pca(report.picture_path("pca"), tables), "each data set projected on its first two principal components")

    report.note(f"**Clustering.** {NOTES['clustering']}")
    report.table("clustering", pd.DataFrame([cluster_row(name, x, y, config.seed) for name, (x, y, _) in tables.items()]),
                 "Adjusted Rand index of the clusters against the true classes, as many clusters as classes.",
                 float_format="{:.3f}".format)

    report.note(f"**Classifiers.** {NOTES['classifiers']}")
    rows = []
    for name, model in classifiers(config.seed).items():
        row, started = {"classifier": name}, time.time()
        for table, (x, y, _) in tables.items():
            scores = cross_val_score(model, x, y, cv=folds)
            row[table] = f"{scores.mean():.4f} ± {scores.std():.4f}"
        row["seconds (all three)"] = round(time.time() - started, 2)
        rows.append(row)
    report.table("classifiers", pd.DataFrame(rows), f"Accuracy under the same {config.folds} stratified folds "
                 "(mean ± standard deviation over the folds).")

    report.note(f"**Evaluating a binary classifier.** {NOTES['evaluation']}")
    x, y, names = tables["breast cancer"]
    positive = (y == names.index(POSITIVE)).astype(int)
    evaluation, curves = evaluate_binary(x, positive, folds, config.threshold)
    report.table("evaluation", evaluation, f"Logistic regression on breast cancer, {POSITIVE} as the positive class; "
                 f"each tumour scored by the model of the fold that held it out; the threshold {config.threshold:g}.",
                 float_format="{:.3f}".format)
    report.picture(plot_evaluation(report.picture_path("evaluation"), curves, config.threshold),
                   "ROC and precision-recall curves, and the confusion matrix at the threshold")
    return report.finish(f"scikit-learn, {config.folds}-fold stratified cross-validation")


def pca_row(name, x):
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    explained = PCA(2).fit(StandardScaler().fit_transform(x)).explained_variance_ratio_
    return {"data set": name, "features": x.shape[1], "examples": len(x), "first component": explained[0],
            "second component": explained[1], "both": explained.sum()}


def cluster_row(name, x, y, seed):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(x)
    classes = len(np.unique(y))
    k_means = KMeans(classes, n_init=10, random_state=seed).fit_predict(x)
    # Full covariances on 64 pixels would be 10 x 2,080 parameters from 1,797 digits: diagonal ones there.
    covariance = "full" if x.shape[1] <= 10 else "diag"
    mixture = GaussianMixture(classes, covariance_type=covariance, n_init=3, random_state=seed).fit(x).predict(x)
    return {"data set": name, "clusters": classes, "k-means": adjusted_rand_score(y, k_means),
            "Gaussian mixture (EM)": adjusted_rand_score(y, mixture), "mixture's covariances": covariance}


def evaluate_binary(x, positive, folds, threshold):
    """Out-of-fold probabilities of logistic regression: areas under the curves, and the counts at `threshold`."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve, roc_auc_score, roc_curve
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probability = cross_val_predict(model, x, positive, cv=folds, method="predict_proba")[:, 1]
    predicted = (probability >= threshold).astype(int)
    (true_negatives, false_positives), (false_negatives, true_positives) = confusion_matrix(positive, predicted)
    evaluation = pd.DataFrame([{
        "ROC AUC": roc_auc_score(positive, probability),
        "average precision (PR AUC)": average_precision_score(positive, probability),
        "accuracy": (true_positives + true_negatives) / len(positive),
        "precision": true_positives / max(1, true_positives + false_positives),
        "recall": true_positives / max(1, true_positives + false_negatives),
        "missed malignant": int(false_negatives), "false alarms": int(false_positives),
    }])
    curves = {"roc": roc_curve(positive, probability)[:2], "pr": precision_recall_curve(positive, probability)[:2],
              "matrix": confusion_matrix(positive, predicted), "scores": evaluation.iloc[0],
              "false-positive rate": false_positives / max(1, false_positives + true_negatives)}
    return evaluation, curves


def plot_pca(path, tables):
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from common import charts

    figure, grid = charts.figure(5 * len(tables), 4.5, columns=len(tables))
    for axes, (name, (x, y, class_names)) in zip(grid[0], tables.items()):
        pca = PCA(2).fit(StandardScaler().fit_transform(x))
        points = pca.transform(StandardScaler().fit_transform(x))
        for label, class_name in enumerate(class_names):
            axes.scatter(*points[y == label].T, s=6, alpha=0.6, label=class_name)
        first, second = pca.explained_variance_ratio_
        axes.set(title=f"{name}: {first + second:.0%} of the variance", xlabel=f"first component ({first:.0%})",
                 ylabel=f"second component ({second:.0%})")
        axes.legend(fontsize=7, markerscale=2, ncol=2 if len(class_names) > 5 else 1)
    return charts.save(figure, path, dpi=90)


def plot_evaluation(path, curves, threshold):
    from common import charts

    figure, ((roc_axes, pr_axes, matrix_axes),) = charts.figure(14, 4.3, columns=3)
    scores, at = curves["scores"], f"threshold {threshold:g}"
    roc_axes.plot(*curves["roc"], label=f"AUC {scores['ROC AUC']:.3f}")
    roc_axes.plot(curves["false-positive rate"], scores["recall"], "ko", label=at)
    roc_axes.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    roc_axes.set(xlabel="false-positive rate", ylabel="true-positive rate (recall)", title="ROC")
    precision, recall = curves["pr"]
    pr_axes.plot(recall, precision, label=f"average precision {scores['average precision (PR AUC)']:.3f}")
    pr_axes.plot(scores["recall"], scores["precision"], "ko", label=at)
    pr_axes.set(xlabel="recall", ylabel="precision", title="precision-recall")
    for axes in (roc_axes, pr_axes):
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right")
    matrix = curves["matrix"]
    matrix_axes.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        matrix_axes.text(column, row, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    matrix_axes.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["benign", POSITIVE], yticklabels=["benign", POSITIVE],
                    xlabel="predicted", ylabel="true", title=f"confusion matrix at threshold {threshold:g}")
    return charts.save(figure, path, dpi=90)
