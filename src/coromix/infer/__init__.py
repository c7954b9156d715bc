"""Inference on a model pinned to data: NUTS sampling, MAP optimization, relabelling of draws."""

from coromix.infer.map import map
from coromix.infer.nuts import nuts
from coromix.infer.relabel import relabel
from coromix.infer.smc import smc

__all__ = ["map", "nuts", "relabel", "smc"]
