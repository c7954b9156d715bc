"""Inference on a model pinned to data: NUTS sampling and MAP optimization."""

from coromix.infer.map import map
from coromix.infer.nuts import nuts

__all__ = ["map", "nuts"]
