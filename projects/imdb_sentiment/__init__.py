"""Movie-review sentiment on IMDB or your own reviews: bag-of-words, TF-IDF and NBSVM classifiers,
a bidirectional LSTM on word2vec vectors, and an ensemble of the LSTM and NBSVM."""

from pathlib import Path

PROJECT = "imdb_sentiment"
FOLDER = Path(__file__).resolve().parent
LINEAR_KINDS = ("bow", "tfidf", "nbsvm")  # n-gram features and logistic regression (scikit-learn)
KINDS = (*LINEAR_KINDS, "lstm", "ensemble")
