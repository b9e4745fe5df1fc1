"""Reading users' own pictures: digits (or clothes) in image files of any size, mode and polarity.

Each picture is prepared the way its dataset was made (data.prepare) and given to the
trained model; one line per file: `path<TAB>class<TAB>probability`. A file that is
not an image, or shows no digit, gets one `error:` line and the others are still read.
"""

import sys

import numpy as np

from common import images, runs
from common.errors import UserError
from projects.mnist_cnn import PROJECT, data


def predict(args):
    """Print each input file's predicted class and its probability; exit status 1 if a file could not be read."""
    path = runs.model_path(PROJECT, args.model)
    model = runs.load_model(path, PROJECT)  # first: another project's model is refused before its config is read
    dataset = runs.run_config(path).get("dataset", "mnist")
    names = data.CLASS_NAMES[dataset]
    prepared, kept, failures = [], [], 0
    for file in images.expand_inputs(args.inputs):  # a folder without images: a warning, the others are read
        try:
            prepared.append(data.prepare(images.open_image(file, "L"), dataset))
            kept.append(file)
        except UserError as error:
            message = str(error)
            print(f"error: {message if message.startswith(str(file)) else f'{file}: {message}'}", file=sys.stderr)
            failures += 1
    if prepared:
        probabilities = model.predict(np.stack(prepared)[..., None], verbose=0)
        for file, row in zip(kept, probabilities):
            print(f"{file}\t{names[row.argmax()]}\t{row.max():.4f}")
    return 1 if failures else 0
