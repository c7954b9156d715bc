"""Exact summing-out of finite discrete choices: paths and plates.

Two mechanisms, chosen by the shape of the discrete variable:

* **Paths.** A scalar finite discrete variable (batch and event shape ``()``) may be branched on with a
  Python ``if``.  The model is run once per combination of such choices (a *path*), each time with a
  concrete value, and the paths' log densities are combined with log-sum-exp.  The paths are found by
  a depth-first replay of the model; their number is bounded by ``max_paths``.

* **Plates.**  A finite discrete variable with a batch shape ``S`` stands for ``S`` independent choices.
  It is given all its values at once along a new axis on the left (an *enumeration dim*): the ``j``-th
  enumerated variable of a run receives the value ``support`` of shape ``(K_j,) + (1,) * (j + R)``,
  which broadcasts against anything of the model's plate frame of rank ``R`` (as in NumPyro and
  Pyro).  Later terms that depend on it (by indexing ``mu[z]`` or ``jnp.where``) carry that axis; at
  the end the terms are contracted plate by plate (:class:`PlateEnumerator`): for one plate,

      log p = sum(terms without enumeration dims)
              + sum_{s in S} logsumexp_{k_0..k_E} sum(terms with enumeration dims)[k_E, .., k_0, s]

  ``O(prod_j K_j * |S|)`` work, not ``K^|S|``; nested plates (a cluster per group of shape
  ``(G, 1)``, a component per observation of shape ``(G, N)``) are summed from the inner plate out.

Contract for plates: terms yielded before the first plate variable are free of it (declare global
parameters first).  Shapes are matched from the right; a term that depends on a plate variable
keeps its plate dims (extra per-element dimensions belong in the event: ``Independent``/``Sample``),
and plates that cross in one term cannot be summed exactly.  Shapes that break this raise an error
rather than give a wrong number.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from coromix.distributions.distribution import Distribution

DEFAULT_MAX_PATHS = 1024


UNROLL_MAX_VALUES = 32


def logsumexp_leading(x: jax.Array, axis: tuple[int, ...]) -> jax.Array:
    r"""``jax.nn.logsumexp(x, axis, keepdims=True)``, unrolled over few values.

    .. math::

        \operatorname{lse}(x)_s = m_s + \log \sum_{k} \exp(x_{k, s} - m_s), \qquad
        m_s = \max_k x_{k, s}\ (0 \text{ where not finite}),

    with ``m`` held constant under differentiation, as in JAX's.  When the summed axes hold at
    most ``UNROLL_MAX_VALUES`` values in all, the sum is written as one elementwise expression
    over the slices ``x[k]``: XLA then fuses the whole of it (and its gradient, the softmax) into
    one loop over the remaining elements.  A reduce over a short leading axis, the layout the
    enumeration dims give, is split between CPU threads by its short outer dim instead; at
    N = 1e6, K = 3 the unrolled form of a plated mixture's value+grad takes half the time of the
    reduce (``benchmarks/gmm.py --value-grad``).  More values: ``jax.nn.logsumexp``.

    >>> import numpy as np
    >>> from scipy.special import logsumexp
    >>> x = np.log(np.arange(1.0, 13.0)).reshape(3, 1, 4)
    >>> out = logsumexp_leading(jnp.asarray(x), (0,))
    >>> out.shape
    (1, 1, 4)
    >>> bool(np.allclose(out, logsumexp(x, axis=0, keepdims=True)))
    True
    """
    axis = tuple(sorted(a % x.ndim for a in axis))
    count = int(np.prod([x.shape[a] for a in axis]))
    if count > UNROLL_MAX_VALUES or count == 0:
        return jax.nn.logsumexp(x, axis=axis, keepdims=True)
    slices = []
    for index in np.ndindex(*(x.shape[a] for a in axis)):
        at = dict(zip(axis, index, strict=True))
        slices.append(x[tuple(at.get(d, slice(None)) for d in range(x.ndim))])
    m = slices[0]
    for s in slices[1:]:
        m = jnp.maximum(m, s)
    m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m)))
    total = sum((jnp.exp(s - m) for s in slices[1:]), jnp.exp(slices[0] - m))
    return jnp.expand_dims(m + jnp.log(total), axis)


class EnumerationError(ValueError):
    """A discrete variable cannot be summed out (infinite support, too many paths, bad shapes)."""


def _base_for_plate(dist: Distribution) -> Distribution | None:
    """For Independent/Sample of a discrete distribution, the distribution scored elementwise."""
    inner = getattr(dist, "distribution", None)
    if inner is None or type(dist).__name__ not in ("Independent", "Sample"):
        return None
    if type(dist).__name__ == "Sample" and tuple(inner.batch_shape) != ():
        raise EnumerationError(
            f"{type(dist).__name__}: a Sample of a batched discrete distribution cannot be enumerated; "
            f"give the Categorical the full batch shape instead"
        )
    return _base_for_plate(inner) or inner


def elementwise(dist: Distribution) -> Distribution:
    """The distribution whose ``log_prob`` scores each discrete choice of ``dist`` separately."""
    return _base_for_plate(dist) or dist


def is_path_site(dist: Distribution) -> bool:
    """A single finite discrete choice (shape ``()``): enumerated as paths, so ``if`` on it works."""
    return (
        bool(dist.is_discrete)
        and dist.has_enumerate_support
        and tuple(dist.batch_shape) == ()
        and tuple(dist.event_shape) == ()
    )


def support_values(dist: Distribution, name: str) -> np.ndarray:
    """The finite support of a discrete variable as a concrete NumPy array, or a clear error."""
    base = elementwise(dist)
    if not base.has_enumerate_support:
        raise EnumerationError(
            f"variable {name!r} ({type(base).__name__}) has an infinite support, so it cannot be "
            f"summed out; give it a value (observe it) or use a finite distribution"
        )
    try:
        values = np.asarray(base.enumerate_support())
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError) as err:
        raise EnumerationError(
            f"variable {name!r}: its support depends on a value that is not known until run time "
            f"({type(base).__name__} with a traced parameter); make it a constant"
        ) from err
    return values


class PathChooser:
    """Gives the value of each scalar discrete choice on one path, recording what it saw."""

    def __init__(self, prefix: tuple[int, ...]):
        self.prefix = prefix
        self.taken: list[int] = []
        self.sizes: list[int] = []
        self.names: list[str] = []

    def fresh(self) -> PathChooser:
        """A new chooser for the same path (a second run of the model along it)."""
        return PathChooser(self.prefix)

    def adopt(self, other: PathChooser) -> None:
        """Take over what ``other`` (a run along the same path) recorded."""
        self.taken, self.sizes, self.names = other.taken, other.sizes, other.names

    def choose(self, name: str, dist: Distribution) -> np.ndarray:
        support = support_values(dist, name)
        depth = len(self.taken)
        index = self.prefix[depth] if depth < len(self.prefix) else 0
        self.taken.append(index)
        self.sizes.append(len(support))
        self.names.append(name)
        return support[index]


def enumerate_paths(run_path: Callable[[PathChooser], Any], max_paths: int) -> list[Any]:
    """Call ``run_path(chooser)`` once per path of the model's scalar discrete choices.

    Depth-first: the first run takes the first support value at every choice; each run then queues
    the siblings of the choices it made beyond its prefix.  Returns the results in path order.
    """
    results: list[Any] = []
    pending: list[tuple[int, ...]] = [()]
    seen_sizes: dict[str, int] = {}
    while pending:
        prefix = pending.pop()
        chooser = PathChooser(prefix)
        results.append(run_path(chooser))
        siblings = []
        for depth in range(len(prefix), len(chooser.taken)):
            base = tuple(chooser.taken[:depth])
            siblings += [base + (v,) for v in range(1, chooser.sizes[depth])]
        pending += reversed(siblings)
        seen_sizes.update(zip(chooser.names, chooser.sizes))
        if len(results) + len(pending) > max_paths:
            choices = ", ".join(f"{n!r} ({k} values)" for n, k in seen_sizes.items())
            raise EnumerationError(
                f"summing out the discrete choices {choices} takes more than max_paths={max_paths} "
                f"runs of the model (one per combination). Use the vectorized form: one variable "
                f"with a batch shape (e.g. Categorical(probs=jnp.broadcast_to(w, (N, K)))) used by "
                f"indexing or jnp.where instead of Python `if`, a HiddenMarkovModel for chains, or "
                f"raise max_paths"
            )
    return results


class PlateEnumerator:
    r"""Collects the log-density terms of one run and sums its batch-shaped discrete variables out.

    **The frame.**  Plate variables and terms are aligned on the right against a frame of ``R``
    plate dims (``R`` = the largest rank the model shows when nothing is enumerated, found by a
    *shape run*: with ``frame_rank=None`` each plate variable gets a placeholder value and only
    ranks are recorded).  The ``j``-th enumerated variable receives all its values along an
    enumeration dim left of the frame, shape ``(K_j,) + (1,) * (j + R)``, so ``mu[z]`` gathers
    ``K_j`` values instead of ``K_j * |S|``.

    **Plates.**  A variable's *ordinal* is the set of frame dims along which it varies: its own
    non-1 dims and those of every enumerated variable it depends on (a dependence shows as a non-1
    enumeration dim).  A variable of an outer plate keeps size-1 dims for the inner plates: a
    cluster per group ``c`` of shape ``(G, 1)`` and a component per observation ``z`` of shape
    ``(G, N)`` have ordinals ``{G}`` and ``{G, N}``.  Variables that share no term are separate
    *components*, summed out separately, so two mixtures of different sizes can sit in one model.

    **Variable elimination.**  Per component, terms are grouped by ordinal and contracted from the
    largest ordinal down: at ordinal ``L`` the terms are added, the variables of ordinal ``L`` are
    log-sum-exp'ed out, and the result, which then depends only on variables of an ordinal ``P``
    strictly inside ``L``, is summed over the plate dims ``L \ P`` and joins ordinal ``P``.  For
    the nested example

    .. math::

        \log p = \sum_{\text{free}} t + \sum_{g} \log \sum_{c_g} \exp\Big[ t_c(c_g)
        + \sum_{n} \log \sum_{z_{gn}} \exp t_z(c_g, z_{gn}) \Big],

    ``O(K_c K_z G N)`` work, never ``K^{G N}``.  Dependencies that do not nest (a term on
    variables of two sibling plates) raise an :class:`EnumerationError` rather than give a wrong
    number.

    Marginals and joint draws reuse the contraction: ``p(z_s = k | rest)`` is the gradient of
    ``log p`` with respect to a zero added to ``z``'s term; a joint draw (or, with max-product,
    the joint mode) clamps the variables one at a time, outer plates first.
    """

    def __init__(self, frame_rank: int | None = None, term_ranks: Mapping[str, int] | None = None):
        self.frame_rank = frame_rank  # R; None: a shape run
        self.term_ranks = dict(term_ranks or {})  # each term's rank in the shape run
        self.placeholders: list[str] = []  # plate variables given a placeholder (shape run)
        self.shape_run_rank = 0  # shape run: the largest rank of a plate variable or a term
        self.sizes: list[int] = []  # K_j of the j-th enumerated variable
        self.names: list[str] = []
        self.supports: list[np.ndarray] = []
        self.plates: list[dict[int, int]] = []  # variable j's plates: frame dim -> size
        self.ranks: list[int] = []  # rank of variable j's own shape (its frame dims on the right)
        self._parent: list[int] = []  # union-find of variables linked by a term
        self.terms: list[tuple[str, jax.Array, int]] = []  # (name, term, enum dims when added)

    @property
    def num_enum_dims(self) -> int:
        return len(self.sizes)

    def enumerate(self, name: str, dist: Distribution) -> jax.Array:
        """All values of plate variable ``name`` along a new enumeration dim; records its term."""
        support = support_values(dist, name)
        full = tuple(dist.batch_shape) + tuple(dist.event_shape)
        if self.frame_rank is None:  # shape run: the model as it is without enumeration
            self.placeholders.append(name)
            self.shape_run_rank = max(self.shape_run_rank, len(full))
            value = jnp.broadcast_to(jnp.asarray(support[0]), full)
            self.add(name, dist.log_prob(value))
            return value
        rank, j = self.frame_rank, self.num_enum_dims
        lead, own = self._split_shape(full)
        what = f"plate variable {name!r} has shape {full}"
        deps = self._deps(lead, what)
        k = len(support)
        value = jnp.asarray(support).reshape((k,) + (1,) * (j + rank))
        self.plates.append(self._plates_of(name, own, deps))
        self.sizes.append(k)
        self.names.append(name)
        self.supports.append(support)
        self.ranks.append(min(len(full), rank))
        self._parent.append(j)
        for d in deps:
            self._union(j, d)
        term = elementwise(dist).enumerate_log_prob()
        term = term.reshape(term.shape[:1] + (1,) * (j + rank + 1 - term.ndim) + term.shape[1:])
        self.add(name, term)
        return value

    def add(self, name: str, term: jax.Array) -> None:
        term = jnp.asarray(term)
        if self.frame_rank is None:
            self.shape_run_rank = max(self.shape_run_rank, term.ndim)
            self.term_ranks[name] = max(term.ndim, self.term_ranks.get(name, 0))
        self.terms.append((name, term, self.num_enum_dims))

    # -- shapes ------------------------------------------------------------------------------

    def _find(self, v: int) -> int:
        while self._parent[v] != v:
            v = self._parent[v]
        return v

    def _union(self, a: int, b: int) -> None:
        self._parent[self._find(a)] = self._find(b)

    def _split_shape(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``shape`` as (enumeration dims on the left, its frame dims padded to rank ``R``)."""
        rank = self.frame_rank
        cut = max(0, len(shape) - rank)
        return tuple(shape[:cut]), (1,) * (rank - len(shape) + cut) + tuple(shape[cut:])

    def _deps(self, lead: tuple[int, ...], what: str) -> list[int]:
        """The enumerated variables that the leading dims ``lead`` (right-aligned) stand for."""
        e = self.num_enum_dims
        enum_shape = tuple(reversed(self.sizes))
        if len(lead) > e:
            raise EnumerationError(
                f"{what}, which cannot be matched element by element with the enumerated plate "
                f"variable(s) {self.names} (enumeration dims {enum_shape} on the left of "
                f"{self.frame_rank} plate dim(s)). Move extra per-element dimensions into the "
                f"event with Independent or Sample, or index with the plate variable so its "
                f"shape is kept"
            )
        deps = []
        for i, n in enumerate(lead):
            var = len(lead) - 1 - i
            if n not in (1, self.sizes[var]):
                raise EnumerationError(
                    f"{what}: its leading dims {lead} do not match the enumeration dims "
                    f"{enum_shape} of {self.names}; use Independent or Sample for extra "
                    f"dimensions"
                )
            if n > 1:
                deps.append(var)
        return deps

    def _plates_of(self, name: str, own: tuple[int, ...], deps: list[int]) -> dict[int, int]:
        """Frame dim -> size along which ``name`` varies: its own and its dependencies' plates."""
        plates = {p: n for p, n in enumerate(own) if n > 1}
        for d in deps:
            for p, n in self.plates[d].items():
                if plates.setdefault(p, n) != n:
                    raise EnumerationError(
                        f"{name!r} has size {plates[p]} at plate dim {p - self.frame_rank} where "
                        f"{self.names[d]!r}, which it depends on, has {n}: shapes are matched "
                        f"from the right. A variable of an outer plate keeps size-1 dims for the "
                        f"inner plates (e.g. a cluster c of shape (G, 1) and a component z of "
                        f"shape (G, N))"
                    )
        return plates

    def _split(self, leave_out: Collection[str] = ()):
        """Terms free of the plate variables, and the others with their variables.

        Bound terms are reshaped to ``E + frame`` (``E`` enumeration dims, then ``R`` plate dims)
        and grouped by component: ``{component: [(name, term, plates)]}``.
        """
        e = self.num_enum_dims
        free, bound = [], {}
        for name, term, dims_then in self.terms:
            if name in leave_out:
                continue
            # a term added before any enumeration cannot depend on an enumerated variable
            if dims_then == 0 or term.ndim <= self.frame_rank:
                if dims_then and term.ndim > self.term_ranks.get(name, term.ndim):
                    raise EnumerationError(
                        f"the log density of {name!r} depends on the plate variable(s) "
                        f"{self.names} (it has shape {term.shape} when they are enumerated, rank "
                        f"{self.term_ranks[name]} otherwise) but does not keep their plate dims "
                        f"(summed or indexed away?); exact summing-out needs every term of a plate "
                        f"variable to keep its plates: put per-element sums in the event with "
                        f"Independent or Sample"
                    )
                free.append((name, term))
                continue
            lead, own = self._split_shape(term.shape)
            deps = self._deps(lead, f"the log density of {name!r} has shape {term.shape}")
            if not deps:
                free.append((name, term))
                continue
            plates = self._plates_of(name, own, deps)
            for d in deps[1:]:
                self._union(deps[0], d)
            term = term.reshape((1,) * (e - len(lead)) + lead + own)
            bound.setdefault(deps[0], []).append((name, term, plates))
        grouped: dict[int, list] = {}
        for first, items in bound.items():
            grouped.setdefault(self._find(first), []).extend(items)
        return free, grouped

    def _component(self, root: int) -> list[int]:
        return [v for v in range(self.num_enum_dims) if self._find(v) == root]

    def _enum_shape_of(self, v: int) -> tuple[int, ...]:
        """Shape of a term on variable ``v`` alone: ``K_v`` at its axis, its plates' sizes."""
        e = self.num_enum_dims
        enum = [1] * e
        enum[e - 1 - v] = self.sizes[v]
        return tuple(enum) + tuple(self.plates[v].get(p, 1) for p in range(self.frame_rank))

    def _dims(self, plates: Collection[int]) -> str:
        return "(" + ", ".join(str(p - self.frame_rank) for p in sorted(plates)) + ")"

    # -- variable elimination ------------------------------------------------------------------

    def _contract(
        self,
        root: int,
        items: list[tuple[str, jax.Array, dict[int, int]]],
        keep: Collection[int] = (),
        max_product: bool = False,
    ) -> jax.Array:
        """``log sum exp(sum of items)`` over the variables of component ``root``, per element of
        its ``keep`` dims.

        Returns an array of the frame's rank: the sizes of the ``keep`` dims, 1 elsewhere.  With
        ``max_product`` the variables are maximized out instead of summed.
        """
        e, rank = self.num_enum_dims, self.frame_rank
        keep = frozenset(keep)
        variables = self._component(root)
        sizes: dict[int, int] = {}
        for v in variables:
            sizes.update(self.plates[v])
        tree: dict[frozenset[int], list[tuple[str, jax.Array]]] = {}
        for name, term, plates in items:
            for p, n in plates.items():
                if sizes.setdefault(p, n) != n:
                    raise EnumerationError(
                        f"the log density of {name!r} has size {n} at plate dim {p - rank} where "
                        f"the plate variables {[self.names[v] for v in variables]} have "
                        f"{sizes[p]}; every term of a plate variable must agree on its plates"
                    )
            tree.setdefault(frozenset(plates), []).append((name, term))
        for v in variables:
            tree.setdefault(frozenset(self.plates[v]), [])
        dtype = jnp.result_type(*[t for _, t, _ in items])
        done: list[jax.Array] = []
        while tree:
            leaf = max(tree, key=len)
            entries = tree.pop(leaf)
            names = [n for n, _ in entries]
            local = [v for v in variables if frozenset(self.plates[v]) == leaf]
            for other in tree.values():
                for name, term in other:
                    tied = [self.names[v] for v in local if term.shape[e - 1 - v] > 1]
                    if tied:
                        raise EnumerationError(
                            f"the log density of {name!r} depends on {tied} but lacks their "
                            f"plate dims {self._dims(leaf)} (summed or indexed away?); exact "
                            f"summing-out needs every term of a plate variable to keep its plates"
                        )
            shape = [1] * (e + rank)
            for v in local:
                shape[e - 1 - v] = self.sizes[v]
            for p in leaf:
                shape[e + p] = sizes[p]
            total = sum((t for _, t in entries), jnp.zeros((1,) * (e + rank), dtype))
            total = jnp.broadcast_to(total, jnp.broadcast_shapes(total.shape, tuple(shape)))
            if local:
                axes = tuple(e - 1 - v for v in local)
                if max_product:
                    total = jnp.max(total, axis=axes, keepdims=True)
                else:
                    total = logsumexp_leading(total, axes)
            deps = [v for v in variables if total.shape[e - 1 - v] > 1]
            parent = frozenset().union(*(self.plates[v] for v in deps))
            if deps and not parent < leaf:
                raise EnumerationError(
                    f"the discrete variables {[self.names[v] for v in deps]} cannot be summed out "
                    f"plate by plate: the log density of {names} depends on variables of "
                    f"different plates (dims "
                    f"{', '.join(self._dims(self.plates[v]) for v in deps)}). Exact enumeration "
                    f"needs nested plates: each plate variable's plates contain those of every "
                    f"plate variable it is scored with"
                )
            target = parent | (leaf & keep)
            summed = tuple(e + p for p in sorted(leaf - target))
            if summed:
                total = jnp.sum(total, axis=summed, keepdims=True)
            if target == leaf:
                done.append(total)
            else:
                tree.setdefault(target, []).append(("+".join(names), total))
        out = sum(done, jnp.zeros((1,) * (e + rank), dtype))
        return out.reshape(out.shape[e:])

    def log_density(self, leave_out: Collection[str] = ()) -> jax.Array:
        """Sum of all terms with the enumerated plate variables summed out plate by plate.

        Terms of the variables in ``leave_out`` are not included.
        """
        free, bound = self._split(leave_out)
        total = sum((jnp.sum(t) for _, t in free), jnp.zeros(()))
        for root, items in bound.items():
            total = total + jnp.sum(self._contract(root, items))
        return total

    def pointwise(self, observed: Collection[str]) -> dict[str, jax.Array]:
        """Log-likelihood of each observed variable per element, the plate variables summed out.

        A term free of the plate variables is its own pointwise log-likelihood (its batch shape).
        Observed terms that carry enumeration dims are not independent of each other given the
        parameters, so they are reported together (names joined by ``+``, one entry per group of
        plate variables scored together), per element of the plates all those variables share
        (the plate of a mixture; the group, for a cluster per group):

            log p(y_s | params) = log sum_z exp(all terms)[s] - log sum_z exp(unobserved terms)[s]

        (the second term is 0 for a plain mixture, where it is the log of the mixture weights' sum).
        """
        free, bound = self._split()
        out = {name: term for name, term in free if name in observed}
        for root, items in bound.items():
            names = list(dict.fromkeys(name for name, _, _ in items if name in observed))
            if not names:
                continue
            variables = self._component(root)
            keep = frozenset.intersection(*(frozenset(self.plates[v]) for v in variables))
            rest = [item for item in items if item[0] not in observed]
            per = self._contract(root, items, keep)
            if rest:
                per = per - self._contract(root, rest, keep)
            sizes = self.plates[variables[0]]
            out["+".join(names)] = per.reshape(tuple(sizes[p] for p in sorted(keep)))
        return out

    def _in_own_shape(self, v: int, per_value: jax.Array) -> jax.Array:
        """``per_value`` (shape ``E + frame``, ``K_v`` at ``v``'s axis) as ``shape_v + (K_v,)``."""
        e = self.num_enum_dims
        moved = jnp.moveaxis(per_value, e - 1 - v, -1)
        frame = moved.shape[e - 1 : -1]
        cut = self.frame_rank - self.ranks[v]
        if any(n > 1 for n in frame[:cut]):
            cut = 0
        return moved.reshape(frame[cut:] + (self.sizes[v],))

    def _from_own_shape(self, v: int, per_value: jax.Array) -> jax.Array:
        """The inverse of :meth:`_in_own_shape`."""
        e = self.num_enum_dims
        frame = self._enum_shape_of(v)[e:]
        x = per_value.reshape((1,) * (e - 1) + frame + (self.sizes[v],))
        return jnp.moveaxis(x, -1, e - 1 - v)

    def _weights(self, v, root, items, clamps, max_product=False) -> jax.Array:
        """``d log p / d eps_v`` at ``eps_v = 0``: the marginal of ``v`` (max-marginal indicator
        with ``max_product``), in ``v``'s own shape + ``(K_v,)``."""
        dtype = jnp.result_type(*[t for _, t, _ in items])
        plates = self.plates[v]
        fixed = [(self.names[u], c, self.plates[u]) for u, c in clamps.items()]

        def log_z(eps):
            every = items + fixed + [(self.names[v], eps, plates)]
            return jnp.sum(self._contract(root, every, max_product=max_product))

        grad = jax.grad(log_z)(jnp.zeros(self._enum_shape_of(v), dtype))
        return self._in_own_shape(v, grad)

    def responsibilities(self) -> dict[str, jax.Array]:
        """``p(z_j[s] = k | everything else on this path)`` per plate variable, ``shape_j + (K_j,)``."""
        _, bound = self._split()
        out = {}
        for root, items in bound.items():
            for v in self._component(root):
                out[self.names[v]] = self._weights(v, root, items, {})
        return {name: out[name] for name in self.names if name in out}

    def sample(self, key: jax.Array | None) -> dict[str, jax.Array]:
        """One joint draw of all plate variables from their exact conditional.

        Variables are drawn one at a time, outer plates first, each from its marginal given the
        ones drawn before (the elements of one variable are independent given those).  With
        ``key=None``, the most probable joint value instead (max-product, clamped the same way).
        """
        _, bound = self._split()
        out = {}
        for root, items in bound.items():
            order = sorted(self._component(root), key=lambda u: (len(self.plates[u]), u))
            clamps: dict[int, jax.Array] = {}
            for v in order:
                weights = self._weights(v, root, items, clamps, max_product=key is None)
                if key is None:
                    index = jnp.argmax(weights, axis=-1)
                else:
                    logits = jnp.log(jnp.clip(weights, 0.0, None))
                    index = jax.random.categorical(jax.random.fold_in(key, v), logits)
                one_hot = jax.nn.one_hot(index, self.sizes[v], dtype=weights.dtype)
                clamps[v] = self._from_own_shape(v, jnp.log(one_hot))
                out[self.names[v]] = jnp.asarray(self.supports[v])[index]
        return {name: out[name] for name in self.names if name in out}
