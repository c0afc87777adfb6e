"""Model and training configuration as data: one place for defaults, saved inside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from readers.files import read_json_object
from readers.graph_records import INTERACTION_TYPES, NODE_KINDS

__all__ = [
    "NODE_KINDS", "AttributeConfig", "EvalConfig", "ExperimentConfig", "FeatureConfig", "GraphConfig", "ModelConfig",
    "PhrasingConfig", "RankerConfig", "RetrievalConfig", "SimulationConfig", "TrainConfig",
]


# Confidence thresholds at which predicted-attribute edges are counted (the paper's Table 5 rows).
# Attribute kinds a product has one value of: a query that adds a value of one of them replaces the
# candidate's ("in black" on a pink shirt asks for black instead of pink, not for both).
EXCLUSIVE_KINDS = ("colour", "article_type", "sub_category", "master_category", "gender", "usage", "season")
PREDICTED_EDGE_THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass
class AttributeConfig:
    """The attribute classifier (``gnn.attributes.predictor``, whose docstring says why each choice)."""

    hidden: int = 512  # shared hidden layer; 0 = linear heads straight on the features
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 200  # upper bound; early stopping on the val loss usually ends far sooner
    patience: int | None = 15  # epochs without a better val loss before stopping; None: run all epochs
    batch_size: int = 256
    seed: int = 0
    mode: str = "auto"  # auto | softmax | sigmoid (see the module docstring)
    single_valued_share: float = 0.95
    min_count: int = 1  # train images a value needs to get an output unit
    pixel_colour: bool = True  # input: CNN + pixel colour features; False: the CNN features alone
    # the kinds the pixel colour features feed (fused with the CNN's, in their own network); the other
    # kinds read the CNN features alone, which gave them the same or better accuracy
    pixel_colour_kinds: tuple[str, ...] = ("colour",)
    calibrate: bool = True  # one temperature per kind, fitted on the val images
    # each kind's weights from the epoch of its own lowest val loss (kinds learn at different speeds:
    # colour overfits within a few epochs, article type keeps improving); False: one epoch for all
    per_kind_stopping: bool = True
    # networks averaged for the kinds pixel colour feeds (their own input group): each member starts from
    # its own initialisation and takes its own dropout masks on the same batches; 1: a single network.
    # Measured by `tailor attributes cv` with 5 networks: colour top-1 +0.5 and +0.3 (two fold seeds), at
    # 2.8x the training time
    ensemble: int = 1
    # once val has chosen each kind's epoch and temperature, train again on the train and val images for
    # those epochs (val's images become training data; the temperatures stay val's). Off by default: colour
    # top-1 +0.8 in cross-validation (two fold seeds) but -0.35 on the test images (mean of five seeds)
    refit: bool = False

    def __post_init__(self) -> None:
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be at least 1 network, not {self.ensemble}")
        if self.mode not in ("auto", "softmax", "sigmoid"):
            raise ValueError(f"mode must be auto, softmax or sigmoid, not {self.mode!r}")


@dataclass
class FeatureConfig:
    """The encoders node features come from (names as :func:`gnn.features.encoders.image_encoder` and
    :func:`~gnn.features.encoders.text_encoder` take them). Saved with every checkpoint and engine, so a
    refresh encodes new text and images with the encoders the model was trained on."""

    image_encoder: str = "efficientnet-lite0"  # offline default; "resnet18" where weights can be downloaded
    text_encoder: str = "minilm"  # the packaged all-MiniLM-L6-v2; any sentence-transformers name or path


@dataclass
class GraphConfig:
    """Which edges carry messages. TARGETS never does (supervision only)."""

    attribute_sources: tuple[str, ...] = ("catalog",)  # HAS_ATTRIBUTE sources used as messages
    caption_roles: bool = True  # MENTIONS split by role (added/removed/mentioned) vs one relation
    # Captions are leaves by default: they listen to their candidate and attributes but do not speak
    # back, so that one query's text does not leak into a product's embedding (and training can run on
    # the batch's captions only). Turn on to follow the paper's "messages flow both ways" literally.
    caption_to_image: bool = False  # MODIFIES: caption -> candidate image
    caption_to_attribute: bool = False  # MENTIONS: caption -> attribute
    interactions: tuple[str, ...] = INTERACTION_TYPES
    min_confidence: float = 0.0
    # Messages are weighted means by the edges' weights (a predicted attribute's confidence, 1 for every
    # other edge); False: every edge weighs 1 (how graphs were read before predicted edges had weights).
    edge_weights: bool = True


@dataclass
class ModelConfig:
    hidden: int = 128
    layers: int = 3
    dropout: float = 0.2
    num_bases: int | None = None  # basis decomposition of relation weights (None: full weights)
    composition: str = "composeae"  # composeae | concat
    conv: str = "fast"  # fast (gnn.nn.layers) | pyg (torch_geometric RGCNConv); same maths


@dataclass
class TrainConfig:
    epochs: int = 60
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 2048
    negatives: int = 2048  # random gallery images per batch, besides the in-batch targets
    temperature: float = 0.05
    link_weight: float = 1.0  # link prediction: candidate + caption -> true target vs sampled targets
    compose_weight: float = 1.0  # ComposeAE rotation symmetry + reconstruction terms
    patience: int = 8  # epochs without a better validation R@10 before stopping
    seed: int = 0
    max_val_queries: int = 2000
    # "full": every step runs the R-GCN over the whole graph (the batch's captions only). "neighbour": every
    # step runs it over a sampled neighbourhood of the batch (gnn.training.sampled): at most fanouts[h]
    # messages of each relation into each node at hop h, so a step costs the same at any catalog size.
    sampler: str = "full"
    fanouts: tuple[int, ...] = (10, 10, 10)  # one per R-GCN layer, the batch's own nodes first
    # With "neighbour": at most this many batches an epoch (None: all). A time-bounded fit, for example
    # a benchmark at a million products that times a share of an epoch; each epoch log says how many ran.
    max_steps_per_epoch: int | None = None


@dataclass
class SimulationConfig:
    """Simulated interactions the graph models train with, so that the interaction relation types
    (USER_TAGGED, LIKED_*) have learned weights before any user interacts (paper, appendix A.3).

    Only training-split images and queries get them, and tags use attributes other than the ones the
    "more metadata" experiment tags (it tags the most frequent ``tag_skip``), so nothing evaluated was
    seen as an interaction in training.
    """

    enabled: bool = True
    tag_skip: int = 15  # the most frequent attributes are left to the experiment ...
    # ... and the next ones are tagged on training images that have them (None: every one after the
    # skipped; the paper's 10 teach the relation too few attribute embeddings to generalise, see README)
    tag_attributes: int | None = None
    tag_share: float = 0.5  # on this share of them (seeded), so the model also sees those images untagged
    # training queries with simulated "I like that", and how many of them join every training batch
    # (the LIKED_* weights' gradient). The paper's 200 left those relations under-trained here (R@10
    # after likes +6.5 points; +11.8 with these defaults). All 2,000 in every batch gave +16.4 but cost
    # the catalog model 4 points of R@10, so that is an option (configs/all-likes-per-batch.json).
    like_examples: int = 2000
    like_share: float = 0.06  # at most this share of the training queries (2,000 is 6% of myntra-small's)
    liked_per_batch: int = 256
    liked_per_example: int = 10  # liked images: those nearest the target by image features
    # ... among this many training images drawn with the seed (None: all of them; at a million products
    # the nearest-neighbour search over all of them costs more than the training it serves)
    like_pool: int | None = None
    seed: int = 0


@dataclass
class PhrasingConfig:
    """Training captions drawn per batch from a grammar of phrasings (:mod:`readers.phrasings`), so that the
    caption's own text features learn the change and the model does not depend on the parser alone.

    Each training query keeps its catalog caption with probability ``template_share``, else takes one of
    its ``variants`` renderings in every training phrasing (values written other ways, and misspelt with
    probability ``typo_share``); its MENTIONS edges come from parsing the text it got. With probability
    ``parse_dropout`` a query has no MENTIONS at all, which trains the parser-off path (text features
    only). The held-apart phrasings are never rendered for training.
    """

    enabled: bool = True
    template_share: float = 0.3
    variants: int = 2
    typo_share: float = 0.1
    parse_dropout: float = 0.2
    seed: int = 0


@dataclass
class RankerConfig:
    """The second stage (``gnn.ranking``): stage one's top ``candidates`` from FAISS re-ranked by a linear
    model over facts of each result against the query, trained listwise on training queries (validation
    for early stopping). Saved with the ranker and the engine that uses it."""

    enabled: bool = True  # off: answers are stage one's order (the embedding ranking)
    exclusive_kinds: tuple[str, ...] = EXCLUSIVE_KINDS  # an added value of these replaces the candidate's
    candidates: int = 200  # stage one's list the second stage re-orders (never drops: it is soft)
    groups: tuple[str, ...] = ("embedding", "facts", "interactions")  # feature groups (the ablation)
    attribute_sources: tuple[str, ...] | None = None  # HAS_ATTRIBUTE sources read as facts; None: the model's
    tags: bool = True  # USER_TAGGED edges count as attribute facts
    image_similarity: bool = True  # the result's image-feature cosine to the candidate, an embedding feature
    epochs: int = 300
    lr: float = 0.05
    weight_decay: float = 1e-4  # L2 on the standardised weights
    patience: int = 30  # epochs without a better validation score (mean of id R@1 and R@10) before stopping
    max_train_queries: int = 6000  # training lists (seeded sample), each ``candidates`` long
    max_val_queries: int = 2000
    # At most this many training (and validation) lists per product group, as the group-balanced test set
    # is drawn: a ranker that learns from the natural distribution, where a few large groups dominate,
    # learns their ties and loses R@1 on the rest. None: the natural distribution (measured: more R@10 on
    # all queries over predicted attributes, less R@1 on the balanced set; docs/recall.md).
    per_group: int | None = 20
    # Simulated "I like that" on this share of the training lists: the shopper likes the target and the
    # images nearest it (by image features), so the like facts get a learned weight.
    like_share: float = 0.05
    liked_per_example: int = 5
    seed: int = 0


@dataclass
class EvalConfig:
    """How the recall table is measured (does not change training)."""

    per_group: int = 20  # the group-balanced set: at most this many queries from one product group
    ks: tuple[int, ...] = (1, 10, 50)
    split: str = "test"


@dataclass
class RetrievalConfig:
    """How the published engine searches and follows interactions; changing it needs no retraining
    (left out of :meth:`ExperimentConfig.training_key`)."""

    # The FAISS index (gnn.retrieval.index): auto | flat (exact) | ivf | hnsw, and each kind's settings;
    # auto is flat up to gnn.retrieval.index.AUTO_IVF_FROM images and IVF above, chosen when it is built.
    index: str = "auto"
    ivf_lists: int | None = None  # None: about 4 * sqrt(images)
    ivf_probe: int = 32  # lists searched per query
    hnsw_m: int = 32  # links per node
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 96  # candidates kept while searching
    shards: int = 1  # >1: the index split across that many FAISS shards (faiss.IndexShards)
    # After an interaction: "local" recomputes what is within the model's reach of it (gnn.retrieval.local),
    # "full" the whole base graph.
    refresh: str = "local"
    hub_degree: int = 256  # attributes with more incoming messages keep sums instead of being re-read
    hub_tolerance: float = 1e-3  # a hub's held change (max |coordinate|) passed on to its readers above this
    # A hub passed on by a live sync: its readers recomputed after the answer, before the next sync (True),
    # or before the answer (False; seconds for a hub like "men" at a million products).
    defer_hub_readers: bool = True
    layer_dtype: str = "float32"  # per-layer embeddings kept in the bundle: float32 | float16 (half the memory)


@dataclass
class ExperimentConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    phrasing: PhrasingConfig = field(default_factory=PhrasingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any]) -> ExperimentConfig:
        """The defaults with ``overrides`` (``{"simulation": {"enabled": false}}``) applied; an unknown
        section or field is an error that names it."""
        data = cls().to_dict()
        for section, values in overrides.items():
            if section not in data or not isinstance(values, dict):
                raise ValueError(f"unknown config section {section!r} (known: {', '.join(data)})")
            unknown = sorted(set(values) - set(data[section]))
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(unknown)} in config section {section!r}")
            data[section].update(values)
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: Path | None = None, **train: Any) -> ExperimentConfig:
        """Defaults, then the JSON file's overrides, then ``train`` fields (``epochs=``, ``seed=``; None
        leaves the value). Errors name the file."""
        overrides: dict[str, Any] = read_json_object(path, "config sections") if path is not None else {}
        try:
            config = cls.from_overrides(overrides)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
        for name, value in train.items():
            if value is not None:
                setattr(config.train, name, value)
        return config

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        def build(kind, values):
            names = {f.name for f in fields(kind)}
            kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in names}
            return kind(**kwargs)

        return cls(
            features=build(FeatureConfig, data.get("features", {})),
            # Checkpoints from before edges had weights read every edge as 1.
            graph=build(GraphConfig, {"edge_weights": False, **data.get("graph", {})}),
            model=build(ModelConfig, data.get("model", {})),
            train=build(TrainConfig, data.get("train", {})),
            # Checkpoints from before simulated interactions existed trained without them.
            simulation=build(SimulationConfig, data.get("simulation", {"enabled": False})),
            # ... and checkpoints from before phrasings existed, with their catalog captions only.
            phrasing=build(PhrasingConfig, data.get("phrasing", {"enabled": False})),
            eval=build(EvalConfig, data.get("eval", {})),
            ranker=build(RankerConfig, data.get("ranker", {})),
            retrieval=build(RetrievalConfig, data.get("retrieval", {})),
        )

    def training_key(self) -> dict[str, Any]:
        """The part of the config that decides a trained model (what a checkpoint is reused by): the second
        stage is trained after it, on its own key; retrieval settings need no retraining. Options at their
        defaults that older checkpoints predate are left out, so those checkpoints stay valid."""
        key = self.to_dict()
        key.pop("eval")
        key.pop("ranker")
        key.pop("retrieval")
        if key["train"]["max_steps_per_epoch"] is None:
            key["train"].pop("max_steps_per_epoch")
        if key["train"]["sampler"] == "full":
            key["train"].pop("sampler")
            key["train"].pop("fanouts")
            key["train"].pop("max_steps_per_epoch", None)
        if key["simulation"]["like_pool"] is None:
            key["simulation"].pop("like_pool")
        return key
