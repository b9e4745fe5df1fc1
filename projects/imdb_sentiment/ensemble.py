"""An ensemble of two trained models: a weighted mean of their probabilities, the weight chosen on validation reviews.

P(positive) = w * P(first member) + (1 - w) * P(second member), where w is the value
of 0, 0.01, ..., 1 with the best accuracy on the validation reviews (ties: the lower
log loss). Neither member trained on those reviews: the LSTM only chose its best
epoch on them, and bow, tfidf and nbsvm their C. So the members must come from the
same split of the same reviews, read with the same tokeniser; the ensemble refuses
others in one line. The members are not refit on all the training reviews
afterwards: that would leave no unseen reviews to choose the weight on.

An ensemble is saved as `ensemble.json` in its run folder: a format marker, the
members' model files and the weight. Loading it loads its members.
"""

from pathlib import Path

import numpy as np

from common import runs
from common.errors import UserError
from projects.imdb_sentiment import PROJECT, data

FORMAT = f"{PROJECT} ensemble"
FILE = "ensemble.json"
WEIGHTS = np.linspace(0, 1, 101)  # of the first member
SPLIT_SETTINGS = ("tiny", "reviews", "test_split", "seed", "val_split")  # what decides the reviews and the split


def combine(first, second, weight):
    return weight * np.asarray(first) + (1 - weight) * np.asarray(second)


def choose_weight(first, second, labels):
    """(w, validation accuracy): the weight of `first` whose combination with `second` is most accurate on `labels`."""
    labels = np.asarray(labels).astype(bool)
    best = None
    for weight in WEIGHTS:
        p = np.clip(combine(first, second, weight), 1e-7, 1 - 1e-7)
        accuracy = float(np.mean((p >= 0.5) == labels))
        loss = float(-np.mean(np.where(labels, np.log(p), np.log(1 - p))))
        if best is None or (accuracy, -loss) > best[:2]:
            best = (accuracy, -loss, round(float(weight), 2))
    return best[2], best[0]


class Ensemble:
    kind = "ensemble"

    def __init__(self, path, members, weight):
        self.path, self.members, self.weight = Path(path), members, weight

    def probabilities(self, token_lists):
        """P(positive) of each review (its tokens)."""
        first, second = (member.probabilities(token_lists) for member in self.members)
        return combine(first, second, self.weight).astype(np.float32)

    def knows(self, tokens):
        return any(member.knows(tokens) for member in self.members)


def trained_on(member, defaults):
    """(the settings that decided a member's reviews and split, the split's fingerprint or None, its tokeniser)."""
    config_file = Path(member.path).parent / "config.json"
    if not config_file.is_file():
        raise UserError(f"{member.path} is not in its run folder (no config.json beside it), so the split it was trained on is unknown")
    saved = runs.read_json(config_file)
    config, resolved = saved.get("config", {}), saved.get("resolved", {})
    settings = {name: config.get(name, defaults[name]) for name in SPLIT_SETTINGS}
    # Runs saved before the tokeniser was recorded used common.text.tokenize as it is.
    return settings, resolved.get("split"), resolved.get("tokeniser", data.TOKENISER)


def check_members(members, defaults):
    """The split settings two members share; refused in one line when they read or split the reviews differently."""
    first, second = members
    if Path(first.path).resolve() == Path(second.path).resolve():
        raise UserError(f"--members names {first.path} twice; an ensemble combines two different runs")
    (settings, split, tokeniser), (other_settings, other_split, other_tokeniser) = (trained_on(m, defaults) for m in members)
    if tokeniser != other_tokeniser:
        raise UserError(f"{first.path} and {second.path} read reviews with different tokenisers "
                        f"({tokeniser!r} and {other_tokeniser!r}); an ensemble needs members that read text alike")
    same = split == other_split if split and other_split else settings == other_settings
    if not same:
        shown = [", ".join(f"{name} {value}" for name, value in s.items()) for s in (settings, other_settings)]
        raise UserError(f"{first.path} and {second.path} were trained on different splits of the reviews ({shown[0]}; {shown[1]}); "
                        "an ensemble needs two runs of the same reviews, --seed and --val-split")
    if not settings["val_split"]:
        raise UserError("the members hold out no validation reviews (--val-split 0), so there is nothing to choose the weight on")
    return settings, split


def save(folder, members, weight):
    return runs.write_json(Path(folder) / FILE, {
        "format": FORMAT,
        "members": [str(Path(member.path).resolve()) for member in members],
        "kinds": [member.kind for member in members],
        "weight": weight,
    })


def read(path):
    """(the members' model files, the weight) of an ensemble.json, or one line saying why not."""
    saved = runs.read_json(path)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise UserError(f"{path} is not an ensemble of the {PROJECT} project (it lacks the {FORMAT!r} marker)")
    members, weight = saved.get("members"), saved.get("weight")
    if (
        not isinstance(members, list) or len(members) != 2 or not all(isinstance(member, str) for member in members)
        or type(weight) not in (int, float) or not 0 <= weight <= 1
    ):
        raise UserError(f"{path} is damaged: it should name two member models and a weight between 0 and 1")
    return members, float(weight)
