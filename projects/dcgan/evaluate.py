"""Scoring a generator of MNIST-style images with the MNIST CNN project's classifier.

Three questions, each answered with numbers: are the images recognisable (the share
the classifier reads with a probability of at least 0.9), is every class made (each
class's share of the readings; a GAN that collapsed onto a few modes leaves some
empty), and do they look like the real thing as a whole (the Fréchet distance between
the classifier's penultimate-layer features of generated and real test images, the idea
of FID with a domain-specific network). The same distance between the real training
and test images is the floor to compare it with. A conditional generator is asked for
every class in turn, so its class shares are balanced by request; for it the score
adds how often the classifier reads the class that was asked for.

The classifier is a file, not an import: the newest `mnist_cnn` run trained on the
same dataset, or `--classifier`.
"""

import keras
import numpy as np

from common import images, runs
from common.errors import UserError
from projects.dcgan import DATASETS, data
from projects.dcgan.generate import classes_of, draw, fixed_labels, load_generator

CLASSIFIER_PROJECT = "mnist_cnn"
CONFIDENCE = 0.9


def classifier_path(dataset, classifier=None):
    """--classifier, or the newest finished mnist_cnn model trained on `dataset` (not a --tiny one)."""
    if classifier is not None:
        return runs.model_path(CLASSIFIER_PROJECT, classifier, flag="--classifier")
    runs.latest_model(CLASSIFIER_PROJECT, flag="--classifier")  # a clear error when there is none at all
    found = sorted((runs.RUNS_DIR / CLASSIFIER_PROJECT).glob("*/model.keras"), key=lambda p: p.stat().st_mtime)
    matching = [p for p in found if _trained_on(p) == dataset]
    if not matching:
        raise UserError(
            f"no {CLASSIFIER_PROJECT} model trained on {dataset} under {runs.RUNS_DIR / CLASSIFIER_PROJECT}; "
            f"train one (python -m projects.mnist_cnn train --dataset {dataset}) or pass --classifier"
        )
    return matching[-1]


def _trained_on(model_path):
    config = runs.run_config(model_path)
    return None if config.get("tiny") else config.get("dataset", "mnist")


def feature_reader(classifier):
    """A model giving (penultimate-layer features, class probabilities): the input of the last Dense layer."""
    last = next((layer for layer in reversed(classifier.layers) if isinstance(layer, keras.layers.Dense)), None)
    if last is None:
        raise UserError(f"the classifier {classifier.name} has no final Dense layer to take features from")
    return keras.Model(classifier.inputs, [last.input, classifier.outputs[0]])


def read(reader, x, batch_size=1000):
    features, probabilities = reader.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(features, np.float64), np.asarray(probabilities, np.float64)


def frechet_distance(a, b):
    """||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between two sets of feature vectors."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr((C_a C_b)^(1/2)) = tr((S C_b S)^(1/2)) with S = C_a^(1/2): symmetric, so eigh is exact and stable.
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(0))) @ vectors.T
    cross = np.sqrt(np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(0)).sum()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def score(generated, reader, real_train, real_test, class_count):
    """The figures: confident share, class shares, Fréchet distances."""
    gen_features, probabilities = read(reader, generated)
    test_features, _ = read(reader, real_test)
    train_features, _ = read(reader, real_train)
    predicted = probabilities.argmax(1)
    return {
        "images": len(generated),
        "confident_share": float((probabilities.max(1) >= CONFIDENCE).mean()),
        "class_shares": (np.bincount(predicted, minlength=class_count) / len(predicted)).tolist(),
        "frechet_generated_test": frechet_distance(gen_features, test_features),
        "frechet_train_test": frechet_distance(train_features, test_features),
    }, predicted, probabilities.max(1)


def evaluate(args):
    if args.n < 2:
        raise UserError(f"--n must be at least 2, got {args.n}")
    generator, path = load_generator(args.model)
    learnt = runs.run_config(path, "resolved").get("dataset")
    if args.dataset is None and learnt == "folder":
        folder = runs.run_config(path)["data_dir"]
        raise UserError(f"{path} learnt the images in {folder}, not mnist or fashion-mnist; pass --dataset to score it anyway")
    dataset = args.dataset or (learnt if learnt in DATASETS else "mnist")
    classifier = runs.load_model(classifier_path(dataset, args.classifier), "mnist_cnn")
    if tuple(generator.output_shape[1:]) != tuple(classifier.input_shape[1:]):
        raise UserError(f"the generator makes {generator.output_shape[1:]} images, the classifier reads {classifier.input_shape[1:]}")
    (x_train, _), (x_test, _) = data.load_real(dataset, args.data_dir)
    rng = np.random.default_rng(args.seed)
    real_train = x_train[rng.choice(len(x_train), min(len(x_train), len(x_test)), replace=False)]

    generated = draw(generator, args.n, args.seed)
    reader = feature_reader(classifier)
    result, predicted, confidence = score(generated, reader, real_train, x_test, classifier.output_shape[-1])
    shares = result["class_shares"]
    result.update(
        dataset=dataset, generator=str(path), classifier=classifier.name, seed=args.seed,
        classes_within_6_to_14_percent=bool(min(shares) >= 0.06 and max(shares) <= 0.14),
    )
    classes = classes_of(generator)
    if classes:  # drawn class by class in turn: does the classifier read the class asked for?
        result["read_as_asked"] = float((predicted == fixed_labels(args.n, classes)[:, 0]).mean())
    print(f"{args.n} generated images, read by the {dataset} classifier:")
    print(f"  read with probability >= {CONFIDENCE}: {result['confident_share'] * 100:.2f}%")
    print("  share per class: " + ", ".join(f"{c}: {s * 100:.1f}%" for c, s in enumerate(shares)))
    if classes:
        print(f"  read as the class the conditional generator was asked for: {result['read_as_asked'] * 100:.2f}%")
    print(f"  Fréchet distance in classifier features, generated vs real test: {result['frechet_generated_test']:.3f}")
    print(f"  the same between {len(real_train)} real training and the {len(x_test)} real test images: {result['frechet_train_test']:.3f}")

    out_dir = path.parent
    shown = slice(0, 100)
    captions = [f"{p} {c:.2f}" for p, c in zip(predicted[shown], confidence[shown])]
    picture = images.grid(generated[shown], columns=10, captions=captions, marked=confidence[shown] < CONFIDENCE, scale=2)
    images.save_image(picture, out_dir / "samples" / "evaluation.png")
    runs.write_json(out_dir / "evaluation.json", result)
    print(f"saved {out_dir / 'evaluation.json'} and {out_dir / 'samples' / 'evaluation.png'}")
    return result
