"""Embedding tools: what to do with the vectors of `astrozoo.embed` (any zoo model: the
``features`` task's encoders, or the backbone of a lens or morphology model).

- `search`: exact cosine nearest neighbours, streamed in blocks over embeddings in memory or
  memory-mapped from disk (`save_embeddings` / `load_embeddings`), so the set can exceed RAM;
- `anomaly`: kNN-distance anomaly ranking;
- `cluster`: k-means or HDBSCAN (scikit-learn);
- `maps`: a 2-D t-SNE or PCA map (scikit-learn) drawn with cutout thumbnails at the points.
"""

from .anomaly import anomaly_scores
from .cluster import cluster
from .maps import embedding_map
from .search import SimilarityIndex, load_embeddings, save_embeddings

__all__ = ["SimilarityIndex", "save_embeddings", "load_embeddings", "anomaly_scores", "cluster",
           "embedding_map"]
