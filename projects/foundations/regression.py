"""Regression: polynomials fitted by gradient descent, overfitting, the L2 penalty, k-fold choice and learning rates.

On scikit-learn's diabetes data (442 patients; the target is the disease's
progression a year on), split at random into training and test halves:

- by degree: one feature, the body-mass index, fitted by polynomials of degree 0 (the
  mean) to 10. Training error can only fall as the degree rises; test error falls, then
  rises: the extra terms fit the training set's noise (overfitting).
- by λ: the degree-10 polynomial with the penalty λ‖w‖² on its coefficients (ridge,
  weight decay). A small λ tames the wiggles; a large one flattens the fit (underfitting).
- by cross-validation: k-fold cross-validation on the training half alone chooses the
  degree and λ; the test half then scores that one choice.
- learning rates: the linear fit on all ten features by gradient descent with a step too
  small, right and too large for the loss's curvature, and by AdaGrad.
- against scikit-learn: that linear fit and its ridge fits agree with the closed form.

Every fit is gradient descent written with `keras.ops` on the mean squared error of the
standardised target (1.0 is the error of predicting the training mean), many fits at
once as one batch. Each step is 1/L, L being the largest curvature of the fit's loss
(the largest eigenvalue of its Hessian): the largest step that never overshoots.
The polynomial features are Legendre polynomials of the BMI scaled to [-1, 1] on the
training rows, each standardised: the same polynomials as the powers of BMI, but where
the powers' loss is a valley 10⁸ times steeper across than along, which would take
gradient descent millions of steps, theirs is about 10³, which takes thousands.
"""

from dataclasses import dataclass

import numpy as np

from common.config import flag, option, require_at_least_one
from common.errors import UserError
from projects.foundations import data
from projects.foundations.experiment import ExperimentConfig, Report

HIGHEST_DEGREE = 15
LARGEST_PENALTY = 1e3
FEATURE = "bmi"
CURVE_STEPS = 2000  # steps drawn in the learning-rate picture (fewer when --steps is smaller)
CURVE_RATES = {"too small: 0.1/L": 0.1, "right: 1/L": 1.0, "too large: 2.2/L": 2.2}
ADAGRAD_RATE = 0.1


@dataclass(frozen=True)
class Config(ExperimentConfig):
    max_degree: int = option(10, f"highest polynomial degree fitted to the BMI (1 to {HIGHEST_DEGREE}); the table starts at 0, the mean")
    ridge_degree: int = option(10, f"degree of the polynomial fitted with each penalty λ (1 to {HIGHEST_DEGREE})")
    lambdas: tuple = option((0.0, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0), f"the penalties λ tried (0 to {LARGEST_PENALTY:g})",
                            nargs="+", type=float)
    folds: int = option(5, "folds of the cross-validation on the training half (2 to its size)")
    test_fraction: float = option(0.5, "share of the patients held out as the test set")
    steps: int = option(20000, f"gradient-descent steps per fit (and of the learning-rate curves, at most {CURVE_STEPS:,})")

    def __post_init__(self):
        require_at_least_one(self, "steps")
        for name in ("max_degree", "ridge_degree"):
            if not 1 <= getattr(self, name) <= HIGHEST_DEGREE:
                raise UserError(f"{flag(name)} must be from 1 to {HIGHEST_DEGREE}, got {getattr(self, name)}")
        if not self.lambdas or not all(0 <= value <= LARGEST_PENALTY for value in self.lambdas):
            raise UserError(f"--lambdas must be from 0 to {LARGEST_PENALTY:g}, got {' '.join(map(str, self.lambdas)) or 'none'}")
        if not 0 < self.test_fraction < 1:
            raise UserError(f"--test-fraction must be between 0 and 1, got {self.test_fraction}")
        if self.folds < 2:
            raise UserError(f"--folds must be at least 2, got {self.folds}")


def run(config):
    x, y, names = data.diabetes(config.tiny, config.seed)
    test_rows, train_rows = np.split(np.random.default_rng(config.seed).permutation(len(x)), [round(len(x) * config.test_fraction)])
    if not len(test_rows):
        raise UserError(f"--test-fraction {config.test_fraction} leaves no patient to test on")
    if not 2 <= config.folds <= len(train_rows):
        raise UserError(f"--folds must be at least 2 and at most the number of training examples ({len(train_rows)}), got {config.folds}")
    report = Report("regression", config)
    target = (y - y[train_rows].mean()) / y[train_rows].std()
    bmi = x[:, names.index(FEATURE)]
    report.note(f"{len(train_rows)} patients to train on, {len(test_rows)} to test on; errors are mean squared errors "
                "of the standardised target (1.0: no better than predicting the training mean).")
    lambdas, degrees = sorted(set(config.lambdas)), range(config.max_degree + 1)

    # Cross-validation on the training half: every (degree, λ) on every fold, one batch.
    grid = [(degree, penalty) for degree in degrees for penalty in lambdas]
    folds = [(train_rows[fit], train_rows[held]) for fit, held in data.folds(len(train_rows), config.folds, config.seed)]
    cv_problems = [Problem.polynomial(bmi, target, fit, degree, penalty) for degree, penalty in grid for fit, _ in folds]
    print(f"gradient descent: {len(cv_problems)} fits of the cross-validation", flush=True)
    cv_weights = fit(cv_problems, config.steps)
    held_out = [held for _ in grid for _, held in folds]
    cv_errors = np.reshape([p.error(w, rows) for p, w, rows in zip(cv_problems, cv_weights, held_out)], (len(grid), len(folds)))
    cv_error = dict(zip(grid, cv_errors.mean(1)))
    chosen = min(cv_error, key=cv_error.get)

    # The same settings fitted on the whole training half, and the ten-feature fits, in a second batch.
    settings = [(d, 0.0) for d in degrees] + [(config.ridge_degree, p) for p in lambdas] + [chosen]
    problems = [Problem.polynomial(bmi, target, train_rows, degree, penalty) for degree, penalty in settings]
    linear = [Problem.linear(x, target, train_rows, penalty) for penalty in lambdas]
    print(f"gradient descent: {len(problems) + len(linear)} fits on the training half", flush=True)
    weights = fit(problems + linear, config.steps)
    fitted = {setting: (problem, w) for setting, problem, w in zip(settings, problems, weights)}
    gap = max(p.excess_loss(w) for p, w in zip(problems + linear + cv_problems, weights + cv_weights))

    by_degree = scores("degree", [(d, 0.0) for d in degrees], fitted, cv_error, train_rows, test_rows)
    report.table("by_degree", by_degree, f"**By degree** (no penalty): the BMI fitted by polynomials of degree 0 to {config.max_degree}.")
    by_penalty = scores("λ", [(config.ridge_degree, p) for p in lambdas], fitted, cv_error, train_rows, test_rows)
    report.table("by_lambda", by_penalty, f"**By penalty λ**, degree {config.ridge_degree}.")
    drawn = {(1, 0.0): "degree 1", (config.max_degree, 0.0): f"degree {config.max_degree}",
             chosen: f"chosen: degree {chosen[0]}, λ = {chosen[1]:g}"}
    report.picture(plot_fits(report.picture_path("fits"), bmi, target, train_rows, test_rows, by_degree, by_penalty,
                             {label: fitted[setting] for setting, label in drawn.items()}, config.ridge_degree),
                   "training, test and cross-validation error by degree and by λ; three fits drawn over the patients")
    report.note(f"**Chosen by {config.folds}-fold cross-validation** on the training half: degree {chosen[0]}, λ = {chosen[1]:g} "
                f"(validation error {cv_error[chosen]:.3f}); its test error is {fitted[chosen][0].error(fitted[chosen][1], test_rows):.3f}. "
                f"After {config.steps:,} steps every fit's training loss is within {gap:.0e} (relative) of its closed-form minimum.")

    report.table("against_scikit_learn", against_scikit_learn(linear, weights[len(problems):], test_rows),
                 "**All ten features**: the linear fit (λ = 0) and ridge fits by gradient descent, against scikit-learn's "
                 "closed form (`LinearRegression`; `Ridge` with α = λ × training size).")
    report.picture(plot_learning_rates(report.picture_path("learning_rates"), linear[0], min(CURVE_STEPS, config.steps)),
                   "training loss of the ten-feature linear fit by step size, and by AdaGrad")
    report.note(f"Gradient descent on the ten-feature linear fit: a step of 0.1/L crawls, 1/L converges, 2.2/L overshoots "
                f"further at every step and diverges (beyond 2/L the steepest direction grows); AdaGrad (rate {ADAGRAD_RATE}) "
                "divides each weight's step by the root of its summed squared gradients, and so needs no curvature to set it.")
    return report.finish(f"{config.steps:,} gradient-descent steps per fit; {config.folds}-fold cross-validation over "
                         f"{len(grid)} (degree, λ) pairs")


@dataclass
class Problem:
    """Minimise mean((features w - target)²) over the fit rows, plus penalty × ‖w‖² (the intercept, column 0, is free)."""

    features: np.ndarray  # (N, D) for every example; column 0 is the intercept's 1
    target: np.ndarray  # (N,)
    fit_rows: np.ndarray
    penalty: float

    @classmethod
    def polynomial(cls, x, target, fit_rows, degree, penalty):
        """Legendre polynomials of `x` scaled to [-1, 1] on `fit_rows`, each standardised there.

        Values beyond the fit rows' range are taken at its edge: what a polynomial does
        outside the data it was fitted on is extrapolation, another story than overfitting.
        """
        from numpy.polynomial import legendre

        low, high = x[fit_rows].min(), x[fit_rows].max()
        scaled = np.clip(2 * (x - low) / (high - low) - 1, -1, 1)
        return cls.linear(legendre.legvander(scaled, degree)[:, 1:], target, fit_rows, penalty)

    @classmethod
    def linear(cls, x, target, fit_rows, penalty):
        """Features: an intercept and the columns of `x`, standardised on `fit_rows`."""
        mean, spread = x[fit_rows].mean(0), x[fit_rows].std(0)
        return cls(np.column_stack([np.ones(len(x)), (x - mean) / spread]), target, fit_rows, penalty)

    def penalised(self):
        return np.r_[0.0, np.ones(self.features.shape[1] - 1)]

    def hessian(self):
        a = self.features[self.fit_rows]
        return 2 * a.T @ a / len(a) + 2 * self.penalty * np.diag(self.penalised())

    def curvature(self):
        """L, the largest eigenvalue of the loss's Hessian: a step of 1/L never overshoots."""
        return np.linalg.eigvalsh(self.hessian()).max()

    def closed_form(self):
        """Where the gradient is zero: (Aᵀ A / n + λ I') w = Aᵀ t / n."""
        a, t = self.features[self.fit_rows], self.target[self.fit_rows]
        return np.linalg.solve(self.hessian() / 2, a.T @ t / len(a))

    def error(self, weights, rows):
        return float(np.mean((self.features[rows] @ weights - self.target[rows]) ** 2))

    def loss(self, weights):
        return self.error(weights, self.fit_rows) + self.penalty * float(np.sum(self.penalised() * weights**2))

    def excess_loss(self, weights):
        """How far above the minimum the loss of `weights` is, relative to the minimum."""
        best = self.loss(self.closed_form())
        return (self.loss(weights) - best) / best


def fit(problems, steps):
    """Gradient descent on every problem at once (one batch in `keras.ops`), each with a step of 1/L; their weights.

    The problems' fit rows and feature columns are padded with zeros to the largest;
    a padded row weighs nothing in the mean, and a zero column's weight stays at zero.
    """
    from keras import ops

    rows, width = max(len(p.fit_rows) for p in problems), max(p.features.shape[1] for p in problems)
    features, targets, shares, penalties = (np.zeros(shape) for shape in ((len(problems), rows, width), (len(problems), rows),
                                                                         (len(problems), rows), (len(problems), width)))
    for index, problem in enumerate(problems):
        count, columns = len(problem.fit_rows), problem.features.shape[1]
        features[index, :count, :columns] = problem.features[problem.fit_rows]
        targets[index, :count] = problem.target[problem.fit_rows]
        shares[index, :count] = 1 / count  # a row's share of the mean
        penalties[index, :columns] = problem.penalty * problem.penalised()
    features, targets, shares, penalties = (ops.convert_to_tensor(a, "float32") for a in (features, targets, shares, penalties))
    rates = ops.convert_to_tensor([[1 / p.curvature()] for p in problems], "float32")

    def step(_, weights):
        residuals = (ops.einsum("pnd,pd->pn", features, weights) - targets) * shares
        gradients = 2 * ops.einsum("pnd,pn->pd", features, residuals) + 2 * penalties * weights
        return weights - rates * gradients

    weights = ops.convert_to_numpy(ops.fori_loop(0, steps, step, ops.zeros((len(problems), width)))).astype(np.float64)
    return [w[: p.features.shape[1]] for p, w in zip(problems, weights)]


def descend(problem, steps, update):
    """The training loss at each of `steps` steps of `update(weights, gradient)` from zero weights (keras.ops)."""
    from keras import ops

    a = ops.convert_to_tensor(problem.features[problem.fit_rows], "float32")
    t = ops.convert_to_tensor(problem.target[problem.fit_rows], "float32")
    weights, losses = ops.zeros(a.shape[1]), []
    for _ in range(steps):
        residuals = ops.matmul(a, weights) - t
        losses.append(float(ops.mean(residuals**2)))
        weights = update(weights, 2 * ops.matmul(ops.transpose(a), residuals) / a.shape[0])
    return np.array(losses)


def adagrad(rate, epsilon=1e-8):
    """AdaGrad's update: each weight's step divided by the root of the sum of its squared gradients so far."""
    from keras import ops

    history = {"squares": 0.0}

    def update(weights, gradient):
        history["squares"] = history["squares"] + gradient**2
        return weights - rate * gradient / (ops.sqrt(history["squares"]) + epsilon)

    return update


def against_scikit_learn(problems, weights, test_rows):
    """Gradient descent's ten-feature fits beside scikit-learn's closed form: coefficients and test errors."""
    import pandas as pd
    from sklearn.linear_model import LinearRegression, Ridge

    rows = []
    for problem, w in zip(problems, weights):
        fit_rows = problem.fit_rows
        model = Ridge(alpha=problem.penalty * len(fit_rows)) if problem.penalty else LinearRegression()
        model.fit(problem.features[fit_rows, 1:], problem.target[fit_rows])
        reference = np.r_[model.intercept_, model.coef_]
        rows.append({"λ": problem.penalty,
                     "coefficients' relative difference": float(np.linalg.norm(w - reference) / np.linalg.norm(reference)),
                     "test error, gradient descent": problem.error(w, test_rows),
                     "test error, scikit-learn": problem.error(reference, test_rows)})
    return pd.DataFrame(rows)


def scores(name, settings, fitted, cv_error, train_rows, test_rows):
    """A table row per setting: its error on the training and test halves, and in cross-validation."""
    import pandas as pd

    rows = []
    for setting in settings:
        problem, weights = fitted[setting]
        rows.append({name: setting[0] if name == "degree" else setting[1], "training error": problem.error(weights, train_rows),
                     "test error": problem.error(weights, test_rows), "cross-validation error": cv_error[setting]})
    return pd.DataFrame(rows)


def plot_fits(path, x, target, train_rows, test_rows, by_degree, by_penalty, curves, ridge_degree):
    """Three panels: error by degree, error by λ, and the `curves` (label: (problem, weights)) over the patients."""
    from common import charts

    figure, ((degree_axes, penalty_axes, fit_axes),) = charts.figure(15, 4.5, columns=3)
    for column, style in (("training error", "o-"), ("test error", "s-"), ("cross-validation error", "^--")):
        degree_axes.plot(by_degree["degree"], by_degree[column], style, label=column)
        penalty_axes.plot(by_penalty["λ"], by_penalty[column], style, label=column)
    degree_axes.set(xlabel="polynomial degree", ylabel="mean squared error (standardised target)", title="error by degree, λ = 0")
    smallest = min((p for p in by_penalty["λ"] if p > 0), default=1.0)
    penalty_axes.set_xscale("symlog", linthresh=smallest)
    penalty_axes.set(xlabel="λ", title=f"error by λ, degree {ridge_degree}")
    fit_axes.scatter(x[train_rows], target[train_rows], s=8, color="tab:blue", alpha=0.6, label="training patients")
    fit_axes.scatter(x[test_rows], target[test_rows], s=8, color="tab:orange", alpha=0.4, label="test patients")
    order = np.argsort(x)
    for label, (problem, weights) in curves.items():
        fit_axes.plot(x[order], problem.features[order] @ weights, label=label)
    fit_axes.set(xlabel="body-mass index (scikit-learn's scaling)", ylabel="standardised disease progression", title="fits")
    for axes in (degree_axes, penalty_axes, fit_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return charts.save(figure, path, dpi=90)


def plot_learning_rates(path, problem, count):
    """How far above its minimum the training loss is, step by step, for each step size and for AdaGrad."""
    from common import charts

    curvature, least = problem.curvature(), problem.loss(problem.closed_form())
    steps = np.arange(1, count + 1)
    figure, ((axes,),) = charts.figure(7, 4.5)
    for label, multiple in CURVE_RATES.items():
        rate = multiple / curvature
        axes.plot(steps, descend(problem, count, lambda w, g, rate=rate: w - rate * g) - least, label=f"{label} = {rate:.3f}")
    axes.plot(steps, descend(problem, count, adagrad(ADAGRAD_RATE)) - least, label=f"AdaGrad, rate {ADAGRAD_RATE}")
    axes.set(xscale="log", yscale="log", ylim=(1e-7, 1e2), xlabel="gradient-descent step", ylabel="training loss minus its minimum",
             title="Linear fit on the ten features: the step size decides")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return charts.save(figure, path, dpi=90)
