"""Clustering family: weight sharing, each kernel reduced to a few distinct values.

Like unstructured pruning it leaves the float32 file as large as before; the
gain is in compression (gzip) and in what a later int8 or palette step can do.
"""

from __future__ import annotations

from typing import Any, ClassVar

from compress.models.backend import keras, tfmot
from compress.models.training import fit
from compress.strategies.base import Choice, Compressed, Context, Range, Skip, Strategy, register
from compress.strategies.notes import by_reason, named


def _refusal(layer: keras.layers.Layer) -> str | None:
    """Why this weighted layer is left as it is, or None to cluster its kernel.

    What tfmot's clustering registry clusters, by exact class: Dense, Conv1D, Conv2D and the
    pointwise kernel of a SeparableConv.  It leaves DepthwiseConv2D alone on purpose.
    """
    layers = keras.layers
    if type(layer) is layers.DepthwiseConv2D:
        return "depthwise kernels, which tfmot does not cluster (the accuracy lost does not come back)"
    kinds = (layers.Dense, layers.Conv1D, layers.Conv2D, layers.SeparableConv1D, layers.SeparableConv2D)
    return None if type(layer) in kinds else "only Dense, Conv1D/2D and separable kernels are clustered"


def _folded_into(model: keras.Model, names: list[str]) -> list[str]:
    """Those of the named layers whose output goes straight into a BatchNormalization, which the
    converter folds into their kernel."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    return [name for name in names
            if any(norm.input is model.get_layer(name).output for norm in norms)]


def _sentence(text: str) -> str:
    """The first letter capitalized, layer names left as the user wrote them."""
    return text[:1].upper() + text[1:]


@register
class Cluster(Strategy):
    name = "cluster"
    family = "clustering"
    summary = "Weight clustering (tfmot): each kernel keeps only `clusters` distinct values."
    fast_params: ClassVar[dict[str, Any]] = {"epochs": 1}
    tunable: ClassVar[dict[str, Range | Choice] | None] = {"clusters": Choice((4, 8, 16, 32))}
    follows = ("distillation", "pruning")

    def __init__(self, clusters: int = 16, epochs: int = 5, lr: float = 3e-4) -> None:
        self.clusters = clusters
        self.epochs = epochs
        self.lr = lr
        self._check(clusters >= 2, f"clusters must be at least 2, got {clusters}")
        self._check_budget(epochs, lr)

    def compress(self, ctx: Context) -> Compressed:
        clustering = tfmot.clustering.keras
        settings = {
            "number_of_clusters": self.clusters,
            "cluster_centroids_init": clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
            "preserve_sparsity": "pruning" in ctx.history,  # sparsity-preserving after pruning
        }
        wrapped, left = {}, []
        for layer in ctx.teacher.layers:
            if not layer.trainable_weights or isinstance(layer, keras.layers.BatchNormalization):
                continue
            reason = _refusal(layer)
            wrapper = layer if reason else clustering.cluster_weights(layer, **settings)
            if wrapper is not layer:
                wrapped[layer.name] = wrapper
            else:  # tfmot returns a Conv2D too small to cluster as it is
                left.append((layer, reason or f"too few weights for {self.clusters} clusters"))
        if not wrapped:
            raise Skip(f"no layer to cluster: {by_reason(left)}" if left else "the teacher has no weights")
        try:
            model = keras.models.clone_model(ctx.teacher,
                                             clone_function=lambda layer: wrapped.get(layer.name, layer))
        except (ValueError, RuntimeError) as error:
            raise Skip(f"tfmot cannot cluster this teacher: {error}".splitlines()[0]) from error
        trained = fit(model, ctx.data, epochs=self.epochs, lr=self.lr, limits=ctx.limits)
        kept = f" Left as they are: {by_reason(left)}." if left else ""
        pointwise_only = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)  # tfmot's choice
        separable = [name for name in wrapped if isinstance(ctx.teacher.get_layer(name), pointwise_only)]
        whole = [name for name in wrapped if name not in separable]
        shared = [f"each kernel of {named(whole)}"] if whole else []
        shared += [f"the pointwise kernel of {named(separable)} (tfmot leaves their depthwise kernel "
                   "as it is)"] if separable else []
        folded = _folded_into(ctx.teacher, list(wrapped))
        scaled = (f" In the file, the BatchNormalization after {named(folded)} is folded into its "
                  f"kernel, which scales each output channel: at most {self.clusters} values per "
                  "channel there, so gzip gains less.") if folded else ""
        return Compressed(
            model=clustering.strip_clustering(model),
            notes=f"{_sentence(' and '.join(shared))} shares {self.clusters} values (fine-tuned "
            f"{trained.describe()}).{kept}{scaled} The float32 file is no smaller, but it compresses "
            "better.",
        )
