"""ImageBind, implemented from its architecture description; loads the official checkpoint."""

from embedstore.encoders.imagebind.encoder import ImageBindEncoder, imagebind_huge, imagebind_test
from embedstore.encoders.imagebind.model import MODALITIES, ImageBindModel

__all__ = ["MODALITIES", "ImageBindEncoder", "ImageBindModel", "imagebind_huge", "imagebind_test"]
