"""Deprecated location of :mod:`coromix.runner` (kept while callers move)."""

from coromix.runner import *  # noqa: F403
from coromix.runner import Handler, ModelDefinitionError, Site, Values, root, run  # noqa: F401
