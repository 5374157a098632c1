"""The competition's fixed facts every stage shares: the class names, the face size, the default seed."""

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""Class names in label order: label k is EMOTIONS[k] (the FER2013 convention)."""

NUM_CLASSES = len(EMOTIONS)
IMAGE_SIZE = 48
"""Faces are IMAGE_SIZE x IMAGE_SIZE grayscale, uint8."""
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE

DEFAULT_SEED = 42
"""The one default seed of every stage (split, forests, CNNs, search, ensembles); `--seed` overrides it."""
