"""The coroutine runner: runs a model generator once, naming each yielded distribution.

A model is a zero-argument generator function describing ONE draw::

    def model():
        mu = yield tfd.Normal(0.0, 5.0)          # named "mu" from the assignment target
        x = yield tfd.Normal(mu, 1.0, name="y")  # named "y" from name=

Every feature of coromix (sampling, log densities, enumeration of discrete choices, pinning,
inference) is a *handler* given to :func:`run`: at each yield the runner names the site and asks the
handler which value to send back into the model.

Naming rules (documented, predictable):

* ``name=`` on the distribution wins and is used verbatim; two sites with the same explicit name
  are an error.
* Otherwise the name is the assignment target of the ``yield`` (``x = yield ...``).
* A site whose ``yield`` sits inside a loop (of the model, or of a model that ``yield from``s it)
  and is named from its target gets an occurrence suffix: ``x_0``, ``x_1``, ... in execution order.
* A ``yield`` without an assignment target (``xs.append((yield d))``) is named ``var{i}``, ``i``
  being its position in the run.
* The same inferred name from two different ``yield`` statements outside loops is an error.
"""

from __future__ import annotations

import dis
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import numpy as np

if TYPE_CHECKING:
    from coromix.distributions.distribution import Distribution

_STORE_OPS = {"STORE_FAST", "STORE_NAME", "STORE_DEREF", "STORE_GLOBAL"}
_SKIP_OPS = {"RESUME", "CACHE", "NOP", "EXTENDED_ARG"}


class Values(dict):
    """A mapping name -> array in model order, whose entries are also attributes (``v.mu``)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no variable named {name!r}; variables: {list(self)}") from None

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{k}: {getattr(v, 'dtype', type(v).__name__)}{list(np.shape(v))}"
            for k, v in self.items()
        )
        return f"Values({inner})"


jax.tree_util.register_pytree_node(
    Values,
    lambda v: (tuple(v.values()), tuple(v.keys())),
    lambda keys, vals: Values(zip(keys, vals)),
)


class Yieldable:
    """The base class of what a model may yield: :class:`coromix.distributions.Distribution`.

    The runner reads only ``name`` (``None``: the site is named from its assignment target); the
    handlers use the rest of the distribution's interface.  It lives here, below the
    distributions, so that the runner needs nothing from them: ``RegimeSwitching``, itself a
    distribution, runs its step through :func:`run`.

    >>> from coromix.distributions import Normal
    >>> isinstance(Normal(0.0, 1.0), Yieldable)
    True
    """

    name: str | None


class Site(NamedTuple):
    """One yielded distribution: its name, the distribution, and the value sent back."""

    name: str
    distribution: Distribution
    value: Any


Handler = Callable[[str, "Distribution"], Any]


class ModelDefinitionError(ValueError):
    """The model's structure is invalid (names, yielded objects)."""


def root(distribution: Distribution) -> Distribution:
    """``JointDistributionCoroutine.Root``: accepted for compatibility with TFP; changes nothing."""
    return distribution


@functools.lru_cache(maxsize=4096)
def _yield_info(code, lasti: int) -> tuple[str | None, bool, int]:
    """(assignment target, whether the yield is inside a loop, source line) of a suspended yield."""
    instructions = list(dis.get_instructions(code))
    target, line = None, code.co_firstlineno
    after = False
    for ins in instructions:
        if ins.offset == lasti:
            after = True
            line = ins.positions.lineno if ins.positions and ins.positions.lineno else line
            continue
        if after and ins.opname not in _SKIP_OPS:
            target = ins.argval if ins.opname in _STORE_OPS else None
            break
    # A backward jump over the yield means a loop; JUMP_BACKWARD_NO_INTERRUPT is `yield from`'s own.
    in_loop = any(
        "BACKWARD" in ins.opname
        and "NO_INTERRUPT" not in ins.opname
        and ins.argval <= lasti < ins.offset
        for ins in instructions
    )
    return target, in_loop, line


def _frames(gen) -> list:
    """The frames of a generator and of the generators it is delegating to (``yield from``)."""
    frames = []
    while gen is not None and inspect.isgenerator(gen) and gen.gi_frame is not None:
        frames.append(gen.gi_frame)
        gen = gen.gi_yieldfrom
    return frames


class _Namer:
    def __init__(self):
        self.explicit: set[str] = set()
        self.loop_counts: dict[str, int] = {}
        self.plain: dict[str, tuple] = {}
        self.position = 0

    def __call__(self, gen, dist: Distribution) -> str:
        index, self.position = self.position, self.position + 1
        frames = _frames(gen)
        infos = [_yield_info(f.f_code, f.f_lasti) for f in frames]
        target, _, line = infos[-1] if infos else (None, False, 0)
        where = (frames[-1].f_code.co_name, line) if frames else ("?", 0)
        if dist.name is not None:
            if dist.name in self.explicit or dist.name in self.plain:
                raise ModelDefinitionError(
                    f"two variables are named {dist.name!r} (the second at line {line}); "
                    f"names must be unique"
                )
            self.explicit.add(dist.name)
            return dist.name
        if target is None:
            return f"var{index}"
        if any(in_loop for _, in_loop, _ in infos):
            count = self.loop_counts.get(target, 0)
            self.loop_counts[target] = count + 1
            name = f"{target}_{count}"
        else:
            if target in self.plain:
                first = self.plain[target]
                raise ModelDefinitionError(
                    f"variable {target!r} is assigned by two yields (in {first[0]}() line {first[1]} "
                    f"and in {where[0]}() line {where[1]}); rename one or pass name="
                )
            self.plain[target] = where
            name = target
        if name in self.explicit:
            raise ModelDefinitionError(f"two variables are named {name!r}; names must be unique")
        return name


def run(model_fn: Callable[[], Any], handler: Handler) -> list[Site]:
    """Run ``model_fn()`` once; at each yield, ``handler(name, distribution)`` gives the value sent.

    Returns the sites in model order.  Exceptions raised by the handler or the model propagate,
    after the generator is closed.
    """
    gen = model_fn()
    if not inspect.isgenerator(gen):
        raise ModelDefinitionError(
            f"the model must be a generator function (its body yields distributions); calling it "
            f"returned {type(gen).__name__}"
        )
    namer = _Namer()
    sites: list[Site] = []
    send = None
    try:
        while True:
            try:
                dist = gen.send(send)
            except StopIteration:
                return sites
            if not isinstance(dist, Yieldable):
                raise ModelDefinitionError(
                    f"the model yielded a {type(dist).__name__} after {len(sites)} variable(s); "
                    f"a model yields coromix distributions only"
                )
            name = namer(gen, dist)
            send = handler(name, dist)
            sites.append(Site(name, dist, send))
    finally:
        gen.close()
