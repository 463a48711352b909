"""The embedded default models (tiny text-to-image, tiny CLIP, digit judge) and their training."""
