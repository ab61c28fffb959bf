"""Embedding quality: k-nearest-neighbour and linear-probe accuracy on labelled objects (the
standard evaluations of self-supervised features, e.g. Caron et al. 2021)."""

from __future__ import annotations

import numpy as np

__all__ = ["knn_accuracy", "linear_probe_accuracy", "embedding_metrics"]


def knn_accuracy(train, train_labels, test, test_labels, k: int = 10) -> float:
    """Accuracy of a cosine k-NN majority vote (ties to the nearest) from the train rows."""
    from astrozoo.embeddings import SimilarityIndex

    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    idx, _ = SimilarityIndex(train).search_arrays(test, k)
    votes = train_labels[idx]
    classes = np.unique(train_labels)
    counts = (votes[..., None] == classes).sum(1) + 1e-3 * (votes[:, :1] == classes)
    return float((classes[counts.argmax(1)] == test_labels).mean())


def linear_probe_accuracy(train, train_labels, test, test_labels) -> float:
    """Accuracy of a multinomial logistic regression (scikit-learn, standardised inputs) fitted
    on the train rows, its L2 strength chosen by 5-fold cross-validation on those rows only
    (as linear evaluations of self-supervised features sweep their regularisation)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-3, 2, 8), cv=5,
                                                               max_iter=2000))
    clf.fit(np.asarray(train), np.asarray(train_labels))
    return float(clf.score(np.asarray(test), np.asarray(test_labels)))


def embedding_metrics(embeddings, labels, *, n_probe: int = 500, k: int = 10, seed: int = 0) -> dict:
    """``knn_accuracy`` (k-NN of each half from the other half, averaged) and
    ``linear_probe_accuracy`` (a probe on `n_probe` random labelled rows, tested on the rest)."""
    emb, labels = np.asarray(embeddings, np.float32), np.asarray(labels)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(emb))
    a, b = perm[: len(emb) // 2], perm[len(emb) // 2:]
    knn = 0.5 * (knn_accuracy(emb[a], labels[a], emb[b], labels[b], k)
                 + knn_accuracy(emb[b], labels[b], emb[a], labels[a], k))
    probe, rest = perm[:n_probe], perm[n_probe:]
    lin = linear_probe_accuracy(emb[probe], labels[probe], emb[rest], labels[rest])
    return {"knn_accuracy": knn, "linear_probe_accuracy": lin, "n": len(emb), "k": k,
            "n_probe": n_probe}
