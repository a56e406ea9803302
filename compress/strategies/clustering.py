"""Clustering family: weight sharing, each kernel reduced to a few distinct values.

Like unstructured pruning it leaves the float32 file as large as before; the
gain is in compression (gzip) and in what a later int8 or palette step can do.
"""

from __future__ import annotations

from typing import Any, ClassVar

from compress.backend import tfmot
from compress.strategies.base import Compressed, Context, Skip, Strategy, register
from compress.training import fit


@register
class Cluster(Strategy):
    name = "cluster"
    family = "clustering"
    summary = "Weight clustering (tfmot): each kernel keeps only `clusters` distinct values."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}

    def __init__(self, clusters: int = 16, epochs: int = 5, lr: float = 3e-4) -> None:
        self.clusters = clusters
        self.epochs = epochs
        self.lr = lr
        self._check(clusters >= 2, f"clusters must be at least 2, got {clusters}")
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        clustering = tfmot.clustering.keras
        keep_zeros = "pruning" in ctx.history  # sparsity-preserving clustering after pruning
        try:
            model = clustering.cluster_weights(
                ctx.teacher, number_of_clusters=self.clusters,
                cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
                preserve_sparsity=keep_zeros,
            )
        except (ValueError, RuntimeError) as error:
            raise Skip(f"tfmot cannot cluster this teacher: {error}") from error
        fit(model, ctx.data, epochs=self.epochs, lr=self.lr)
        return Compressed(
            model=clustering.strip_clustering(model),
            notes=f"Each Dense/Conv kernel shares {self.clusters} values (fine-tuned {self.epochs} "
            "epochs): the float32 file is no smaller, but it compresses far better.",
        )
