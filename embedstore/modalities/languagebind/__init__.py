"""The ``languagebind`` preprocessing recipe: the official LanguageBind processors, one module each.

``embedstore.modalities.load(modality, source, recipe="languagebind")`` uses these loaders for
vision and thermal (`image`), depth, video, audio and text.
"""

from embedstore.modalities.languagebind import audio, depth, image, text, video
from embedstore.modalities.recipes import register_recipe

RECIPE = "languagebind"
register_recipe(RECIPE, "vision", image.load)
register_recipe(RECIPE, "thermal", image.load)
register_recipe(RECIPE, "depth", depth.load)
register_recipe(RECIPE, "video", video.load)
register_recipe(RECIPE, "audio", audio.load)
register_recipe(RECIPE, "text", text.load)

__all__ = ["RECIPE", "audio", "depth", "image", "text", "video"]
