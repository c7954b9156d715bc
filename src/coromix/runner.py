"""The coroutine runner: runs a model generator once, naming each yielded distribution.

A model is a zero-argument generator function describing ONE draw:

>>> import coromix.distributions as tfd
>>> def model():
...     mu = yield tfd.Normal(0.0, 5.0)          # named "mu" from the assignment target
...     x = yield tfd.Normal(mu, 1.0, name="y")  # named "y" from name=
>>> [site.name for site in run(model, lambda name, dist: dist.mean())]
['mu', 'y']

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

>>> def model():
...     mu = yield tfd.Normal(0.0, 1.0)
...     for i in range(2):
...         x = yield tfd.Normal(mu, 1.0)            # in a loop: x_0, x_1
...     xs = [(yield tfd.Normal(mu, 2.0))]           # no assignment target: var3
>>> [site.name for site in run(model, lambda name, dist: 0.5)]
['mu', 'x_0', 'x_1', 'var3']
"""

from __future__ import annotations

import dis
import functools
import inspect
import linecache
import os
import re
import traceback
from collections.abc import Callable, Generator
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import numpy as np

if TYPE_CHECKING:
    from coromix.distributions.distribution import Distribution

_STORE_OPS = {"STORE_FAST", "STORE_NAME", "STORE_DEREF", "STORE_GLOBAL"}
_SKIP_OPS = {"RESUME", "CACHE", "NOP", "EXTENDED_ARG"}


class Values(dict):
    """A mapping name -> array in model order, whose entries are also attributes (``v.mu``).

    A JAX pytree, so it passes through ``jax.jit``, ``jax.vmap`` and ``jax.tree_util`` with its
    type and order kept.

    >>> import jax, jax.numpy as jnp
    >>> v = Values(mu=jnp.zeros(2), z=jnp.int32(1))
    >>> v
    Values(mu: float32[2], z: int32[])
    >>> v.mu is v["mu"]
    True
    >>> w = jax.tree_util.tree_map(lambda a: a + 1, v)
    >>> type(w).__name__, list(w), w.mu.tolist(), int(w.z)
    ('Values', ['mu', 'z'], [1.0, 1.0], 2)
    >>> v.sigma
    Traceback (most recent call last):
    ...
    AttributeError: no variable named 'sigma'; variables: ['mu', 'z']
    """

    def __getattr__(self, name: str) -> Any:
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
    """One yielded distribution: its name, the distribution, and the value sent back.

    >>> import coromix.distributions as tfd
    >>> def model():
    ...     mu = yield tfd.Normal(0.0, 1.0)
    >>> (site,) = run(model, lambda name, dist: 0.25)
    >>> site.name, type(site.distribution).__name__, site.value
    ('mu', 'Normal', 0.25)
    """

    name: str
    distribution: Distribution
    value: Any


#: ``handler(name, distribution)``: the value :func:`run` sends back into the model at a yield.
Handler = Callable[[str, "Distribution"], Any]


class ModelDefinitionError(ValueError):
    """The model's structure is invalid (names, yielded objects).

    >>> import coromix.distributions as tfd
    >>> def model():
    ...     x = yield tfd.Normal(0.0, 1.0, name="x")
    ...     y = yield tfd.Normal(x, 1.0, name="x")
    >>> run(model, lambda name, dist: 0.0)
    Traceback (most recent call last):
    ...
    coromix.runner.ModelDefinitionError: two variables are named 'x' (the second at line 3);
    names must be unique
    """


class ControlFlowError(ModelDefinitionError, TypeError):
    """Python control flow (``if``, ``while``, ``int()``, a list index) on a model value that has
    no single concrete value: a batch of values, or a value traced by JAX.

    Raised by :func:`run` in place of JAX's ``TracerBoolConversionError`` (and its relatives) or
    NumPy's "truth value of an array is ambiguous", naming the variable, the model's line and the
    fix.  Both a ``TypeError`` (as JAX's errors) and a ``ValueError`` (as NumPy's).

    >>> import coromix.distributions as tfd
    >>> def model():
    ...     x = yield tfd.Normal([0.0, 1.0], 1.0)
    ...     if x > 0:
    ...         y = yield tfd.Normal(0.0, 1.0)
    >>> run(model, lambda name, dist: dist.mean())
    Traceback (most recent call last):
    ...
    coromix.runner.ControlFlowError: model 'model', ... line 3 (`if x > 0:`): Python control flow
    (if, while, and, or) needs one True/False value, but 'x' has shape (2,) (one value per batch element). Fix: index
    with it (mu[z]) or use jnp.where(condition, a, b) instead of `if`...
    """


def root(distribution: Distribution) -> Distribution:
    """``JointDistributionCoroutine.Root``: accepted for compatibility with TFP; changes nothing.

    >>> import coromix.distributions as tfd
    >>> d = tfd.Normal(0.0, 1.0)
    >>> root(d) is d
    True
    """
    return distribution


@functools.lru_cache(maxsize=4096)
def _yield_info(code: CodeType, lasti: int) -> tuple[str | None, bool, int]:
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


def _frames(gen: Generator) -> list[FrameType]:
    """The frames of a generator and of the generators it is delegating to (``yield from``)."""
    frames = []
    while gen is not None and inspect.isgenerator(gen) and gen.gi_frame is not None:
        frames.append(gen.gi_frame)
        gen = gen.gi_yieldfrom
    return frames


class _Namer:
    def __init__(self) -> None:
        self.explicit: set[str] = set()
        self.loop_counts: dict[str, int] = {}
        self.plain: dict[str, tuple] = {}
        self.position = 0

    def __call__(self, gen: Generator, dist: Distribution) -> str:
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


def _model_name(model_fn: Callable) -> str:
    fn = getattr(model_fn, "func", model_fn)  # functools.partial
    return getattr(fn, "__name__", type(fn).__name__)


def _describe(obj: Any) -> str:
    """What a model yielded instead of a distribution, in the user's terms."""
    if obj is None:
        return "None (a bare `yield`)"
    if inspect.isgenerator(obj):
        return "a generator (run a sub-model with `yield from submodel()`, not `yield submodel()`)"
    if isinstance(obj, (jax.Array, np.ndarray, np.generic, int, float)):
        dtype = obj.dtype if hasattr(obj, "dtype") else np.asarray(obj).dtype
        return f"an array of shape {tuple(np.shape(obj))} and dtype {dtype}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}"


def _user_frame(err: BaseException) -> tuple[str, int, str] | None:
    """(file, line, source) of the innermost frame of ``err`` outside JAX, NumPy and coromix, or
    else of the innermost generator's (a model shipped inside coromix)."""
    outside = generator = None
    for frame, line in traceback.walk_tb(err.__traceback__):
        filename = frame.f_code.co_filename
        where = (filename, line, linecache.getline(filename, line).strip())
        if not any(part in filename for part in _LIBRARY_PARTS):
            outside = where
        if frame.f_code.co_flags & inspect.CO_GENERATOR:
            generator = where
    return outside or generator


# Paths of the libraries whose frames are not the user's (the model's line is looked for outside).
_LIBRARY_PARTS = (
    f"{os.sep}jax{os.sep}",
    f"{os.sep}jaxlib{os.sep}",
    f"{os.sep}numpy{os.sep}",
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def _control_flow_error(
    err: Exception, model_fn: Callable, sites: list[Site]
) -> ControlFlowError | None:
    """:class:`ControlFlowError` for JAX's tracer conversion errors and NumPy's ambiguous truth
    value raised by the model's own code; ``None`` for any other error."""
    text = str(err).lower()
    if isinstance(err, jax.errors.TracerIntegerConversionError) or (
        isinstance(err, TypeError) and "integer scalar arrays can be converted" in text
    ):
        need, fix = (
            "a Python integer (a list index, range(), int()) needs one concrete integer",
            "index a JAX array instead (jnp.asarray(values)[z]) or use jnp.where",
        )
    elif isinstance(err, jax.errors.TracerArrayConversionError):
        need, fix = (
            "a NumPy function (np.*) needs a concrete array",
            "use the jax.numpy function (jnp.*) on model variables",
        )
    elif isinstance(err, jax.errors.ConcretizationTypeError) or (
        isinstance(err, ValueError) and "truth value of an array" in text
    ):
        need, fix = (
            "Python control flow (if, while, and, or) needs one True/False value",
            "index with it (mu[z]) or use jnp.where(condition, a, b) instead of `if`",
        )
    else:
        return None
    where = _user_frame(err)
    filename, line, source = where if where else ("the model", 0, "")
    names = set(_IDENTIFIER.findall(source))
    used = [s for s in sites if s.name in names or re.sub(r"_\d+$", "", s.name) in names]
    what = []
    for site in used or sites[-1:]:
        shape = tuple(np.shape(site.value))
        if shape:
            what.append(f"{site.name!r} has shape {shape} (one value per batch element)")
        elif isinstance(site.value, jax.core.Tracer):
            what.append(
                f"{site.name!r} is traced (its value is known only inside the compiled "
                f"computation: continuous variables, and discrete ones under jit or vmap)"
            )
    if not what:
        what = ["the value is traced or has several elements"]
    code = f" (`{source}`)" if source else ""
    return ControlFlowError(
        f"model {_model_name(model_fn)!r}, {os.path.basename(filename)} line {line}{code}: "
        f"{need}, but {'; '.join(what)}. Fix: {fix}. Only a scalar discrete choice "
        f"(z = yield Categorical(probs=[...])) has a concrete value to branch on"
    )


def run(model_fn: Callable[[], Any], handler: Handler) -> list[Site]:
    """Run ``model_fn()`` once; at each yield, ``handler(name, distribution)`` gives the value sent.

    Returns the sites in model order.  Exceptions raised by the handler or the model propagate,
    after the generator is closed.

    Example: send ``0.5`` back at every yield, then score the run.

    >>> import coromix.distributions as tfd
    >>> def model():
    ...     mu = yield tfd.Normal(0.0, 1.0)
    ...     x = yield tfd.Normal(mu, 2.0)
    >>> sites = run(model, lambda name, dist: 0.5)
    >>> [(site.name, site.value) for site in sites]
    [('mu', 0.5), ('x', 0.5)]
    >>> float(sum(site.distribution.log_prob(site.value) for site in sites))
    -2.6560...

    In closed form, ``log N(0.5; 0, 1) + log N(0.5; 0.5, 2)``:

    >>> import math
    >>> -0.5 * 0.5**2 - 0.5 * math.log(2 * math.pi) - math.log(2.0) - 0.5 * math.log(2 * math.pi)
    -2.6560...
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
            except (TypeError, ValueError) as err:
                better = _control_flow_error(err, model_fn, sites)
                if better is None:
                    raise
                raise better from err
            if not isinstance(dist, Yieldable):
                frames = _frames(gen)
                line = frames[-1].f_lineno if frames else 0
                after = f"after {sites[-1].name!r}" if sites else "as its first variable"
                raise ModelDefinitionError(
                    f"model {_model_name(model_fn)!r}, line {line}: yielded "
                    f"{_describe(dist)} {after}; a model yields coromix distributions only "
                    f"(x = yield tfd.Normal(...)); compute other values without yield"
                )
            name = namer(gen, dist)
            send = handler(name, dist)
            sites.append(Site(name, dist, send))
    finally:
        gen.close()
