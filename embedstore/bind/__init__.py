"""Contrastive binding: align one modality's ImageBind tower to a frozen encoder's space, with LoRA.

``bind(pairs, modality=..., out_dir=...)`` trains and saves a bound-encoder folder, which
``create_encoder("bound:/path/to/dir")`` loads (importing this package registers the ``bound:``
prefix).
"""

from embedstore.bind.api import BindResult, TowerSpec, bind
from embedstore.bind.bound import (
    BoundEncoder,
    bound_dir,
    load_bound_encoder,
    register_bound_encoder,
)
from embedstore.bind.lora import (
    LORA_TARGETS,
    LoRAConfig,
    LoRALinear,
    LoRAWeight,
    apply_lora,
    has_lora,
    lora_parameters,
    lora_state_dict,
    merge_lora,
)
from embedstore.bind.loss import LogitScale, chance_recall, info_nce, retrieval_recall
from embedstore.bind.pairs import Pair, read_pairs
from embedstore.bind.train import TrainConfig, TrainResult, ValidationSet, train_tower

__all__ = [
    "LORA_TARGETS",
    "BindResult",
    "BoundEncoder",
    "LoRAConfig",
    "LoRALinear",
    "LoRAWeight",
    "LogitScale",
    "Pair",
    "TowerSpec",
    "TrainConfig",
    "TrainResult",
    "ValidationSet",
    "apply_lora",
    "bind",
    "bound_dir",
    "chance_recall",
    "has_lora",
    "info_nce",
    "load_bound_encoder",
    "lora_parameters",
    "lora_state_dict",
    "merge_lora",
    "read_pairs",
    "register_bound_encoder",
    "retrieval_recall",
    "train_tower",
]
