"""A network from first principles: a two-layer net in NumPy, its backward pass written by hand.

The course builds a network out of layers that each know two things: `forward`
(compute the output, remember what the gradient will need) and `backward` (turn
the gradient of the loss with respect to the output into the gradient with
respect to the input and the layer's own parameters). Chained in reverse order,
the backward passes are backpropagation. Here: Affine -> ReLU -> Affine ->
softmax-with-loss, in float64.

Three checks, then training:
- the gradient check: backpropagation against central differences of the loss,
  parameter by parameter (relative error below 1e-7);
- SGD, momentum, AdaGrad and Adam as the course writes them, each stepped 100 times
  beside the `keras.optimizers` class configured to the same formula, in float64, on
  the course's long valley x²/20 + y² (its paths drawn as in the course) and on the
  network;
- the net trained on MNIST with each optimiser: training loss and test accuracy
  per epoch on one picture.
"""

import time
from dataclasses import dataclass

import numpy as np

from common.config import option, require_at_least_one
from projects.foundations import data
from projects.foundations.experiment import ExperimentConfig, Report

GRADIENT_TOLERANCE = 1e-7
KERAS_TOLERANCE = 1e-6
CHECK_STEPS = 100
CHECK_EXAMPLES = 3  # the numerical gradient costs two forward passes per parameter: a few images suffice
EPSILON = 1e-7  # the course's guard against dividing by zero (AdaGrad, Adam)
# Each at the rate it is usually run with (SGD: the course's two-layer net's).
LEARNING_RATES = {"sgd": 0.1, "momentum": 0.01, "adagrad": 0.01, "adam": 0.001}


@dataclass(frozen=True)
class Config(ExperimentConfig):
    data_dir: str = option(None, "folder with the MNIST files (default: $DATA_DIR, the Keras cache, then download)")
    hidden: int = option(100, "units in the hidden layer")
    epochs: int = option(10, "passes over the 60,000 training images, per optimiser")
    batch_size: int = option(100, "images per step")

    def __post_init__(self):
        require_at_least_one(self, "hidden", "epochs", "batch_size")


# --- Layers ---------------------------------------------------------------------------


class Affine:
    """x @ W + b; backward gives dx and keeps dW, db."""

    def __init__(self, weights, bias):
        self.weights, self.bias = weights, bias

    def forward(self, x):
        self.x = x
        return x @ self.weights + self.bias

    def backward(self, upstream):
        self.weights_gradient = self.x.T @ upstream
        self.bias_gradient = upstream.sum(axis=0)
        return upstream @ self.weights.T


class Relu:
    """max(0, x); the gradient passes where the input was positive and stops elsewhere."""

    def forward(self, x):
        self.positive = x > 0
        return x * self.positive

    def backward(self, upstream):
        return upstream * self.positive


class SoftmaxWithLoss:
    """Softmax and cross-entropy as one layer: together their gradient is (probabilities - one-hot) / batch."""

    def forward(self, scores, labels):
        shifted = scores - scores.max(axis=1, keepdims=True)  # exp() of large scores would overflow
        self.probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        self.labels = labels
        picked = self.probabilities[np.arange(len(labels)), labels]
        return -np.mean(np.log(picked + 1e-300))

    def backward(self):
        gradient = self.probabilities.copy()
        gradient[np.arange(len(self.labels)), self.labels] -= 1
        return gradient / len(self.labels)


class TwoLayerNet:
    """input -> Affine -> ReLU -> Affine -> softmax; He-initialised, float64."""

    def __init__(self, inputs, hidden, classes, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": rng.normal(0, np.sqrt(2 / inputs), (inputs, hidden)), "b1": np.zeros(hidden),
            "W2": rng.normal(0, np.sqrt(2 / hidden), (hidden, classes)), "b2": np.zeros(classes),
        }
        # The layers hold the arrays in `params` themselves, so an optimiser's in-place update reaches them.
        self.first, self.relu = Affine(self.params["W1"], self.params["b1"]), Relu()
        self.second, self.output = Affine(self.params["W2"], self.params["b2"]), SoftmaxWithLoss()

    def scores(self, x):
        return self.second.forward(self.relu.forward(self.first.forward(x)))

    def loss(self, x, labels):
        return self.output.forward(self.scores(x), labels)

    def gradients(self, x, labels):
        """Backpropagation: the loss's gradient for every parameter (and the loss)."""
        loss = self.loss(x, labels)
        self.first.backward(self.relu.backward(self.second.backward(self.output.backward())))
        return loss, {
            "W1": self.first.weights_gradient, "b1": self.first.bias_gradient,
            "W2": self.second.weights_gradient, "b2": self.second.bias_gradient,
        }

    def accuracy(self, x, labels, batch_size=2000):
        right = sum(int((self.scores(x[i : i + batch_size]).argmax(axis=1) == labels[i : i + batch_size]).sum())
                    for i in range(0, len(x), batch_size))
        return right / len(x)


def numerical_gradients(net, x, labels, step=1e-5):
    """Central differences (f(p + h) - f(p - h)) / 2h, one parameter at a time."""
    gradients = {}
    for name, values in net.params.items():
        gradient = np.zeros_like(values)
        for index in np.ndindex(values.shape):
            kept = values[index]
            values[index] = kept + step
            above = net.loss(x, labels)
            values[index] = kept - step
            below = net.loss(x, labels)
            values[index] = kept
            gradient[index] = (above - below) / (2 * step)
        gradients[name] = gradient
    return gradients


def relative_error(a, b):
    """|a - b| / (|a| + |b|) in the Euclidean norm: 0 when equal, 1 when opposite."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def gradient_check(net, x, labels):
    """{parameter: relative error of backpropagation against central differences}."""
    _, analytic = net.gradients(x, labels)
    numeric = numerical_gradients(net, x, labels)
    return {name: relative_error(analytic[name], numeric[name]) for name in net.params}


# --- Optimisers, as the course writes them ------------------------------------------------


class SGD:
    """W <- W - lr * g"""

    def __init__(self, lr):
        self.lr = lr

    def update(self, params, grads):
        for name in params:
            params[name] -= self.lr * grads[name]


class Momentum:
    """v <- momentum * v - lr * g;  W <- W + v"""

    def __init__(self, lr, momentum=0.9):
        self.lr, self.momentum, self.velocity = lr, momentum, None

    def update(self, params, grads):
        if self.velocity is None:
            self.velocity = {name: np.zeros_like(value) for name, value in params.items()}
        for name in params:
            self.velocity[name] = self.momentum * self.velocity[name] - self.lr * grads[name]
            params[name] += self.velocity[name]


class AdaGrad:
    """h <- h + g²;  W <- W - lr * g / (√h + ε): each parameter's rate shrinks with its own past gradients."""

    def __init__(self, lr, epsilon=EPSILON):
        self.lr, self.epsilon, self.squares = lr, epsilon, None

    def update(self, params, grads):
        if self.squares is None:
            self.squares = {name: np.zeros_like(value) for name, value in params.items()}
        for name in params:
            self.squares[name] += grads[name] ** 2
            params[name] -= self.lr * grads[name] / (np.sqrt(self.squares[name]) + self.epsilon)


class Adam:
    """m, v: running means of g and g²;  W <- W - lr·√(1-β₂ᵗ)/(1-β₁ᵗ) · m / (√v + ε): momentum plus
    AdaGrad's per-parameter scaling, with the first steps' bias towards zero corrected."""

    def __init__(self, lr, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2, self.step, self.mean, self.square = lr, beta1, beta2, 0, None, None

    def update(self, params, grads):
        if self.mean is None:
            self.mean = {name: np.zeros_like(value) for name, value in params.items()}
            self.square = {name: np.zeros_like(value) for name, value in params.items()}
        self.step += 1
        rate = self.lr * np.sqrt(1 - self.beta2**self.step) / (1 - self.beta1**self.step)
        for name in params:
            self.mean[name] += (1 - self.beta1) * (grads[name] - self.mean[name])
            self.square[name] += (1 - self.beta2) * (grads[name] ** 2 - self.square[name])
            params[name] -= rate * self.mean[name] / (np.sqrt(self.square[name]) + EPSILON)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": AdaGrad, "adam": Adam}
SETTINGS = {"sgd": {}, "momentum": {"momentum": 0.9}, "adagrad": {"epsilon": EPSILON}, "adam": {"beta1": 0.9, "beta2": 0.999}}
# Keras' Adagrad cannot put ε where the course does (see keras_twin); with an ε far below every gradient the
# network sees, the two formulas meet, and the comparison checks everything else they do.
SMALL_ADAGRAD_EPSILON = 1e-16


def keras_twin(name, lr, settings):
    """The keras.optimizers class set to the course's formula.

    Keras' SGD with momentum is the course's v = m·v - lr·g, W += v as it is, and its
    Adam the course's Adam, ε = 1e-7 included. Its Adagrad starts the sum of squares
    at 0.1 and adds ε under the square root, √(h + ε): started at 0, with its ε the
    square of the course's, it divides by exactly the course's √h + ε where h = 0 (a
    parameter whose gradient has always been 0), and by nearly the same where √h is
    far above ε; no setting makes them equal where √h is near ε.
    """
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(lr)
    if name == "momentum":
        return keras.optimizers.SGD(lr, momentum=settings["momentum"])
    if name == "adagrad":
        return keras.optimizers.Adagrad(lr, initial_accumulator_value=0.0, epsilon=settings["epsilon"] ** 2)
    return keras.optimizers.Adam(lr, beta_1=settings["beta1"], beta_2=settings["beta2"], epsilon=EPSILON)


def in_float32(value):
    """`value` rounded to float32, as a Python float.

    Keras keeps the learning rate in a float32 variable and, on TensorFlow, rounds
    momentum and the betas to float32 before it casts them to float64 (0.999 becomes
    0.99900001); both sides of a comparison get the rounded numbers, so that it
    compares formulas, not roundings of their settings.
    """
    return float(np.float32(value))


def compare_with_keras(name, lr, start, gradients, steps, **overrides):
    """Step the course's optimiser `name` and its Keras twin `steps` times from the weights `start`
    ({name: float64 array}), each on the gradients at its own weights (`gradients(params, step)`);
    how far apart they end, relative to how far they went (the largest over the parameters).
    `overrides` replace the optimiser's SETTINGS."""
    import keras

    from common import backend

    lr, settings = in_float32(lr), {key: in_float32(value) for key, value in {**SETTINGS[name], **overrides}.items()}
    ours, params = OPTIMIZERS[name](lr, **settings), {key: value.copy() for key, value in start.items()}
    for step in range(steps):
        ours.update(params, gradients(params, step))
    with backend.float64_enabled():
        variables = {key: keras.Variable(value, dtype="float64", name=key) for key, value in start.items()}
        theirs = keras_twin(name, lr, settings)
        for step in range(steps):
            grads = gradients({key: keras.ops.convert_to_numpy(variable) for key, variable in variables.items()}, step)
            theirs.apply_gradients([(grads[key], variables[key]) for key in variables])
        reached = {key: keras.ops.convert_to_numpy(variable) for key, variable in variables.items()}
    return max(float(np.linalg.norm(params[key] - reached[key]) / max(np.linalg.norm(params[key] - start[key]), 1e-300))
               for key in params)


def network_gradients(net, batches):
    """`gradients(params, step)` for compare_with_keras: the net's, at `params`, on batch number `step`."""

    def gradients(params, step):
        for key, value in params.items():
            net.params[key][...] = value
        return net.gradients(*batches[step])[1]

    return gradients


# The course's picture of the four optimisers: f(x, y) = x²/20 + y², a long, shallow valley,
# from (-7, 2), each optimiser at the rate the course draws it with.
BOWL_START = (-7.0, 2.0)
BOWL_STEPS = 30
BOWL_RATES = {"sgd": 0.95, "momentum": 0.1, "adagrad": 1.5, "adam": 0.3}


def bowl(x, y):
    return x**2 / 20 + y**2


def bowl_gradients(params, step):
    x, y = params["xy"]
    return {"xy": np.array([x / 10, 2 * y])}


def bowl_path(name, steps):
    """The points optimiser `name` visits on the bowl, starting point first."""
    params, optimizer = {"xy": np.array(BOWL_START)}, OPTIMIZERS[name](BOWL_RATES[name])
    path = [params["xy"].copy()]
    for step in range(steps):
        optimizer.update(params, bowl_gradients(params, step))
        path.append(params["xy"].copy())
    return np.array(path)


# --- Training ----------------------------------------------------------------------------


def scaled(pixels):
    return pixels.astype(np.float64) / 255.0


def batches(x, labels, batch_size, rng):
    order = rng.permutation(len(x))
    for start in range(0, len(x), batch_size):
        picked = order[start : start + batch_size]
        yield x[picked], labels[picked]


def train(name, config, train_split, test_split):
    """The net from `config.seed`, trained by optimiser `name`; a row per epoch: loss, test accuracy, seconds."""
    x_train, y_train = train_split
    net = TwoLayerNet(x_train.shape[1], config.hidden, 10, config.seed)
    optimizer, rng = OPTIMIZERS[name](LEARNING_RATES[name], **SETTINGS[name]), np.random.default_rng(config.seed)
    rows, started = [], time.time()
    for epoch in range(1, config.epochs + 1):
        losses = []
        for x, labels in batches(x_train, y_train, config.batch_size, rng):
            loss, grads = net.gradients(x, labels)
            optimizer.update(net.params, grads)
            losses.append(loss)
        rows.append({"optimizer": name, "epoch": epoch, "train loss": float(np.mean(losses)),
                     "test accuracy": net.accuracy(*test_split), "seconds": time.time() - started})
    print(f"{name}: test accuracy {rows[-1]['test accuracy']:.4f} after {config.epochs} epochs ({rows[-1]['seconds']:.0f} s)",
          flush=True)
    return rows


def plot_training(curves, path):
    from common import charts

    figure, ((loss_axes, accuracy_axes),) = charts.figure(11, 4.2, columns=2)
    for name, rows in curves.items():
        epochs = [row["epoch"] for row in rows]
        loss_axes.plot(epochs, [row["train loss"] for row in rows], marker="o", markersize=3, label=name)
        accuracy_axes.plot(epochs, [row["test accuracy"] for row in rows], marker="o", markersize=3, label=name)
    loss_axes.set(xlabel="epoch", ylabel="training loss (mean over the epoch)", yscale="log", title="training loss")
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
    accuracy_axes.legend(loc="lower right")
    figure.suptitle("The NumPy two-layer network trained by each optimiser")
    return charts.save(figure, path, dpi=90)


def plot_bowl(paths, path):
    from common import charts

    figure, grid = charts.figure(10, 6, rows=2, columns=2)
    x, y = np.meshgrid(np.linspace(-10, 10, 200), np.linspace(-5, 5, 100))
    for axes, (name, points) in zip(grid.ravel(), paths.items()):
        axes.contour(x, y, bowl(x, y), levels=np.geomspace(0.05, 30, 12), colors="grey", linewidths=0.6)
        axes.plot(points[:, 0], points[:, 1], "o-", color="tab:red", markersize=2.5, linewidth=1)
        axes.plot(0, 0, "+", color="black", markersize=10)
        axes.set(title=f"{name} (lr {BOWL_RATES[name]:g})", xlim=(-10, 10), ylim=(-5, 5))
    figure.suptitle(f"{BOWL_STEPS} steps on f(x, y) = x²/20 + y² from {BOWL_START}")
    return charts.save(figure, path, dpi=90)


def run(config):
    """Gradient check, the optimisers against Keras, then MNIST training per optimiser."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    (x_train, y_train), (x_test, y_test) = data.load_pixels("mnist", config.data_dir, config.tiny, config.seed)
    x_train, x_test = scaled(x_train), scaled(x_test)
    report = Report("scratch", config)
    # Matrices this small gain little from several BLAS threads, and lose much when the cores are busy.
    with threadpool_limits(limits=1, user_api="blas"):
        net = TwoLayerNet(x_train.shape[1], config.hidden, 10, config.seed)
        errors = gradient_check(net, x_train[:CHECK_EXAMPLES], y_train[:CHECK_EXAMPLES])
        report.table("gradient_check",
                     pd.DataFrame([{"parameter": key, "shape": "x".join(map(str, net.params[key].shape)), "relative error": error,
                                    f"below {GRADIENT_TOLERANCE:g}": error < GRADIENT_TOLERANCE} for key, error in errors.items()]),
                     f"Backpropagation against central differences on {CHECK_EXAMPLES} training images, every parameter:",
                     float_format="{:.2e}".format)

        check_batches = list(batches(x_train, y_train, config.batch_size, np.random.default_rng(config.seed)))[:CHECK_STEPS]
        start = {key: value.copy() for key, value in net.params.items()}
        problems = {
            "x²/20 + y²": (BOWL_RATES, {"xy": np.array(BOWL_START)}, bowl_gradients, CHECK_STEPS),
            f"the network, training batches of {config.batch_size}": (LEARNING_RATES, start, network_gradients(net, check_batches),
                                                                    len(check_batches)),
        }
        agreement = []
        for problem, (rates, params, gradients, steps) in problems.items():
            variants = [(name, {}) for name in OPTIMIZERS] + [("adagrad", {"epsilon": SMALL_ADAGRAD_EPSILON})]
            for name, overrides in variants:
                gap = compare_with_keras(name, rates[name], params, gradients, steps, **overrides)
                shown = f"{name}, ε = {overrides['epsilon']:g}" if overrides else name
                agreement.append({"problem": problem, "optimizer": shown, "learning rate": f"{rates[name]:g}", "steps": steps,
                                  "relative difference": gap, f"below {KERAS_TOLERANCE:g}": gap < KERAS_TOLERANCE})
        report.table("keras_agreement", pd.DataFrame(agreement),
                     "Each optimiser as written here against its Keras class set to the same formula, float64: "
                     "how far apart the weights end, relative to how far they moved:", float_format="{:.2e}".format)
        report.note("Keras' SGD (with and without momentum) and Adam compute the course's formulas operation for operation. "
                    "Its Adagrad adds ε under the square root, √(h + ε²), where the course adds it after, √h + ε: the two "
                    "divide alike where √h is far above ε = 1e-7 (on the valley) and differently for weights whose gradients "
                    "have all been tiny, such as those of pixels that are rarely lit, where a network's paths then drift apart. "
                    f"With ε = {SMALL_ADAGRAD_EPSILON:g} on both sides (Keras' the square of it), far below those gradients, "
                    "the two formulas meet and the rows show the rest of AdaGrad agreeing.")
        report.picture(plot_bowl({name: bowl_path(name, BOWL_STEPS) for name in OPTIMIZERS}, report.picture_path("bowl")),
                       "the four optimisers' paths on x²/20 + y²")

        curves = {name: train(name, config, (x_train, y_train), (x_test, y_test)) for name in OPTIMIZERS}
    final = pd.DataFrame([{"optimizer": name, "learning rate": LEARNING_RATES[name], "final train loss": rows[-1]["train loss"],
                           "final test accuracy": rows[-1]["test accuracy"],
                           "best test accuracy": max(row["test accuracy"] for row in rows),
                           "seconds": round(rows[-1]["seconds"], 1)} for name, rows in curves.items()])
    report.table("training", final,
                 f"The network {x_train.shape[1]}-{config.hidden}-10 trained for {config.epochs} epochs by each optimiser "
                 f"(batches of {config.batch_size}):")
    report.picture(plot_training(curves, report.picture_path("curves")), "training loss and test accuracy per optimiser")
    best = final.loc[final["final test accuracy"].idxmax()]
    report.note(f"Best: {best['optimizer']}, {best['final test accuracy']:.2%} test accuracy after {config.epochs} epochs.")
    return report.finish(f"MNIST, {len(x_train):,} training and {len(x_test):,} test images, NumPy float64")
