"""The official ImageBind code, from the PyPI package ``imagebind-unofficial``, on our weights.

That package ships the official repository's ``imagebind/models`` files unchanged (compared
against facebookresearch/ImageBind's ``imagebind_model.py``, ``multimodal_preprocessors.py``,
``transformer.py`` and ``helpers.py``); ``imagebind-packaged`` 0.1.2 is a reformatted older copy
with a different tokenizer, and ``imagebind`` 0.0.1.dev0 is an empty placeholder. Its licence lets
us run the code, not copy it, so it is installed in the benchmark environment only:

    pip install --no-deps imagebind-unofficial==0.1.1 && pip install einops iopath

(``--no-deps``: its data helpers need pytorchvideo and decord, which the model code does not.)
The package's ``imagebind/__init__.py`` imports those data helpers, so `official_model` imports
``imagebind.models`` without running it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

import torch
from torch import nn

from embedstore.errors import InvalidConfig

PACKAGE = "imagebind-unofficial"
INSTALL = f"pip install --no-deps {PACKAGE}==0.1.1 && pip install einops iopath"


def official_module() -> Any:
    """``imagebind.models.imagebind_model`` of the installed official code, or `InvalidConfig`."""
    if "imagebind" not in sys.modules:  # the package without its __init__ (data helpers)
        spec = importlib.util.find_spec("imagebind")
        if spec is None or not spec.submodule_search_locations:
            raise InvalidConfig(
                f"--mode official_code needs the official ImageBind code: {INSTALL}", field="mode"
            )
        pkg = types.ModuleType("imagebind")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["imagebind"] = pkg
    try:
        return importlib.import_module("imagebind.models.imagebind_model")
    except ImportError as exc:
        raise InvalidConfig(
            f"--mode official_code: the official ImageBind code does not import ({exc}); {INSTALL}",
            field="mode",
        ) from exc


def official_model(config: dict[str, Any], ours: nn.Module) -> nn.Module:
    """The official ``ImageBindModel(**config)`` holding ``ours``' tensors (shared, strict keys).

    Built on our parameters' device (its random init is fast there; the meta device cannot run
    its constructor), then it takes our tensors, with their dtype.
    """
    module = official_module()
    device = next(ours.parameters()).device
    with torch.device(device):
        model = module.ImageBindModel(**config)
    model.load_state_dict(ours.state_dict(), strict=True, assign=True)
    return model.eval()
