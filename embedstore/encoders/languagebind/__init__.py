"""LanguageBind (Zhu et al., 2024), implemented from its architecture description in torch.

``LanguageBindModel.from_config(config_json_dict)`` builds one hub tower (text + one modality);
it loads the official checkpoints' keys (LoRA unmerged, ``position_ids`` optional).
"""

from embedstore.encoders.languagebind.config import TowerConfig, parse_config
from embedstore.encoders.languagebind.model import LanguageBindModel

__all__ = ["LanguageBindModel", "TowerConfig", "parse_config"]
