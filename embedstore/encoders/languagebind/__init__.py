"""LanguageBind (Zhu et al., 2024), implemented from its architecture description in torch.

``LanguageBindModel.from_config(config_json_dict)`` builds one hub tower (text + one modality);
it loads the official checkpoints' keys (LoRA unmerged, ``position_ids`` optional). Importing this
package loads no torch: the names below are imported on first access, and `catalog` registers
the encoders with factories that import the model code when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedstore.encoders.languagebind.config import TowerConfig, parse_config
    from embedstore.encoders.languagebind.model import LanguageBindModel

_LAZY = {
    "LanguageBindModel": "embedstore.encoders.languagebind.model",
    "TowerConfig": "embedstore.encoders.languagebind.config",
    "parse_config": "embedstore.encoders.languagebind.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LanguageBindModel", "TowerConfig", "parse_config"]
