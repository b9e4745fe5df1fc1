"""A character n-gram model with interpolated Kneser-Ney smoothing: the baseline the LSTM must beat.

Interpolated Kneser-Ney (Chen and Goodman's form, one absolute discount per order):

    P(w | h) = max(c(h w) - D, 0) / c(h) + D N(h •) / c(h) · P(w | h')

where h' is h without its oldest character, c counts n-grams at the highest order
and, below it, counts *continuations* (the number of different characters seen
before h w), and N(h •) is the number of different characters seen after h. The
lowest order is interpolated with the uniform distribution over the vocabulary, so
an unseen character keeps a small probability and perplexity stays finite. A context
never seen falls back to the next lower order whole. The distribution is over every
token a model can predict (all but padding and START) and sums to 1.

Written with dictionaries and NumPy: NLTK's implementation is far slower and gives
unseen characters probability 0.
"""

import math
from collections import Counter, defaultdict

import numpy as np

from projects.tang_poetry.data import FORCED, PAD, START


def count_grams(sequences, order):
    """grams[k]: the k-grams (k = 1..order) ending on a real token, with their counts; each sequence padded with START."""
    grams = [Counter() for _ in range(order + 1)]
    for ids in sequences:
        padded = [START] * (order - 1) + list(ids[1:] if len(ids) and ids[0] == START else ids)
        for k in range(1, order + 1):
            grams[k].update(tuple(padded[i - k : i]) for i in range(order, len(padded) + 1))
    return grams


class KneserNey:
    def __init__(self, order, vocabulary_size):
        self.order, self.size = order, vocabulary_size
        self.predicted = np.ones(vocabulary_size, bool)
        self.predicted[[PAD, START]] = False

    def fit(self, sequences):
        """Count the n-grams of id sequences (each START ... END, as data.Vocabulary.encode gives them)."""
        return self.from_counts(count_grams(sequences, self.order))

    def from_counts(self, grams):
        """Fit from `count_grams` of this order or a higher one (lower orders share one counting pass)."""
        n = self.order
        # Counts per order: raw at the top, continuations (distinct left neighbours) below.
        self.counts = [None] * (n + 1)
        self.counts[n] = grams[n]  # a k-gram ends on a real token, so it is the same whatever the padding
        for k in range(1, n):
            self.counts[k] = Counter(gram[1:] for gram in grams[k + 1])
        self.followers = [None] * (n + 1)  # per order: context -> {next: count}
        self.totals, self.kinds, self.discounts = [None] * (n + 1), [None] * (n + 1), [0.0] * (n + 1)
        for k in range(1, n + 1):
            followers = defaultdict(dict)
            for gram, count in self.counts[k].items():
                followers[gram[:-1]][gram[-1]] = count
            self.followers[k] = dict(followers)
            self.totals[k] = {h: sum(f.values()) for h, f in followers.items()}
            self.kinds[k] = {h: len(f) for h, f in followers.items()}
            of = Counter(self.counts[k].values())
            self.discounts[k] = min(0.95, max(0.05, of[1] / (of[1] + 2 * of[2]))) if of[1] else 0.5
        return self

    def last_characters(self, context):
        """The order - 1 tokens an n-gram conditions on, START-padded at a poem's beginning."""
        return tuple(([START] * (self.order - 1) + list(context))[-(self.order - 1):]) if self.order > 1 else ()

    def distribution(self, context):
        """P(next | context) over the whole vocabulary (0 for padding and START); sums to 1."""
        p = self.predicted / self.predicted.sum()
        context = self.last_characters(context)
        for k in range(1, self.order + 1):
            h = context[len(context) - (k - 1):] if k > 1 else ()
            followers = self.followers[k].get(h)
            if not followers:
                continue
            d, total = self.discounts[k], self.totals[k][h]
            mixed = p * (d * self.kinds[k][h] / total)
            ids = np.fromiter(followers, int, len(followers))
            mixed[ids] += np.maximum(np.fromiter(followers.values(), float, len(followers)) - d, 0) / total
            p = mixed
        return p

    def probability(self, context, token):
        """P(token | context), computed without the whole distribution."""
        context = self.last_characters(context)
        p = 1.0 / self.predicted.sum() if self.predicted[token] else 0.0
        for k in range(1, self.order + 1):
            h = context[len(context) - (k - 1):] if k > 1 else ()
            followers = self.followers[k].get(h)
            if not followers:
                continue
            d, total = self.discounts[k], self.totals[k][h]
            p = max(followers.get(token, 0) - d, 0) / total + d * self.kinds[k][h] / total * p
        return p

    def log_probabilities(self, ids):
        """ln P of each token after START in one sequence, and whether each is a character (not forced)."""
        logs, characters = [], []
        for i in range(1, len(ids)):
            logs.append(math.log(self.probability(ids[:i], ids[i])))
            characters.append(ids[i] not in FORCED)
        return np.array(logs), np.array(characters, bool)

    def perplexity(self, sequences):
        """Perplexity per character over the sequences, the forced punctuation and END left out."""
        total, count = 0.0, 0
        for ids in sequences:
            logs, characters = self.log_probabilities(ids)
            total += logs[characters].sum()
            count += characters.sum()
        return math.exp(-total / max(count, 1))


def best_order(train, validation, vocabulary_size, orders=(3, 4, 5)):
    """The Kneser-Ney model of the order with the lowest validation perplexity, and each order's perplexity."""
    grams = count_grams(train, max(orders))
    fitted = {order: KneserNey(order, vocabulary_size).from_counts(grams) for order in orders}
    scores = {order: model.perplexity(validation) for order, model in fitted.items()}
    best = min(scores, key=scores.get)
    return fitted[best], scores
