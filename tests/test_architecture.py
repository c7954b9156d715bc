"""The architecture of ``src/coromix``, read from the source with :mod:`ast` (nothing is imported).

Import graph
    Nodes are the coromix modules: one per ``.py`` file, a package being its ``__init__.py``
    (``coromix.markov``) and ``__main__.py`` a module like any other.  Every ``import`` statement
    of a module ``M`` naming a coromix module ``T`` is an edge ``M -> T``:

    * ``import coromix.a.b`` and ``import coromix.a.b as c``: an edge to ``coromix.a.b``;
    * ``from coromix.a import b``: an edge to ``coromix.a.b`` when that is a module, else to the
      package ``coromix.a`` (``b`` is then a name defined or re-exported by its ``__init__``);
      relative imports are resolved the same way;
    * so a package ``__init__`` that imports its submodules has edges to them;
    * importing ``coromix.a.b`` runs the ``__init__`` of the package ``coromix.a`` first, so the
      import is also an edge to each package above the named module, except the packages that
      contain the importing module itself (Python has started them before it, and importing a
      sibling does not run them again).  The root ``coromix`` contains every module, so it is
      never such an edge; ``coromix.runner`` importing ``coromix.distributions.distribution``
      depends on ``coromix.distributions`` (its ``__init__``), while
      ``coromix.distributions.normal`` importing the same module does not.

    An edge is *top-level* when the statement runs when ``M`` is imported (module body, class
    bodies, ``try`` and ``if`` blocks) and *function-level* when it sits inside a function (it
    runs at the first call).  Statements under ``if TYPE_CHECKING:`` never run: they are not
    edges.  Self-edges (a package importing a name from itself) are ignored.

    A cycle of top-level edges fails: importing one module of the cycle first gives the others a
    half-initialized module.  A cycle that needs a function-level edge fails too: a lazy import
    hides an upward dependency, it does not remove it (the architecture is downward).  The only
    exceptions are the lazy re-exports listed in :data:`LAZY_REEXPORTS`, each with its reason.
    Each failure message gives the cycle as ``a -> b -> ... -> a`` with the line of every edge.

Private names
    A name is private when it starts with one underscore and is not a dunder (``__version__``
    is public).  The *owner* of a private name is the module it is looked up on: ``_x`` in
    ``from coromix.m import _x``, in ``import coromix.m._x`` / ``from coromix.m import _x`` where
    ``coromix.m._x`` is a private submodule, and in an attribute ``m._x`` where ``m`` is bound
    in the file (by an import) to the coromix module ``coromix.m``, also through attribute chains
    such as ``cm.distributions._x`` after ``import coromix as cm``.  An attribute ``m._x`` counts
    only when the owner module really defines ``_x`` at its top level (or has a submodule ``_x``),
    which keeps local variables that happen to shadow a module name out.

    A module may use the private names of

    * itself, and
    * when the owner is a package (its ``__init__.py``), the modules of that package's own
      directory: ``coromix._arviz`` may be used by ``coromix.results`` (both in ``src/coromix/``)
      and ``coromix.markov._x`` by ``coromix.markov.api`` (both in ``src/coromix/markov/``), but
      not by a module of a sub-package in another directory (``coromix.cli.plots`` may not use
      ``coromix._arviz``).

    Everything else fails: a private name of another module (``coromix.markov.common._x`` from
    ``coromix.markov.api``, ``coromix.scoring._x`` from ``coromix.joint``) is that module's
    business, so the caller must go through a public name.  Private attributes of objects
    (``posterior._cache``) are not checked: the types are not known from the source.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = "coromix"
SRC = Path(__file__).resolve().parents[1] / "src"

#: Function-level edges (source, target) allowed to close a cycle, with the names they carry:
#: re-exports for users, loaded on first access by a module ``__getattr__`` (PEP 562), that no
#: coromix module reads from the source (checked below).
LAZY_REEXPORTS = {
    # TFP's spelling `tfd.JointDistributionCoroutine`; the model layer sits above distributions
    ("coromix.distributions", "coromix.joint"): {"JointDistributionCoroutine"},
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    top_level: bool
    via: str | None = None  # the submodule imported, when the target is a package run before it

    def __str__(self) -> str:
        notes = [f"line {self.line}"]
        if not self.top_level:
            notes.append("in a function")
        if self.via:
            notes.append(f"runs its __init__ before {self.via}")
        return f"{self.source} -> {self.target} ({', '.join(notes)})"


@dataclass(frozen=True)
class PrivateUse:
    user: str
    owner: str
    name: str
    line: int

    def __str__(self) -> str:
        return f"{self.user} line {self.line}: {self.owner}.{self.name}"


@cache
def modules() -> dict[str, Path]:
    """Dotted name -> file of every coromix module."""
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def is_package(module: str) -> bool:
    return modules()[module].name == "__init__.py"


@cache
def tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(module: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """The import statements of ``module`` that run, each with whether it runs at import time."""

    def walk(node: ast.AST, top_level: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, top_level
            elif isinstance(child, ast.If) and is_type_checking(child.test):
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), top_level)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, False)
            else:
                yield from walk(child, top_level)

    yield from walk(tree(module), True)


def from_base(module: str, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` statement reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module if is_package(module) else module.rpartition(".")[0]
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


@cache
def edges() -> tuple[Edge, ...]:
    found = []
    for module in modules():
        for node, top_level in imports(module):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = from_base(module, node)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base
                    for alias in node.names
                ]
            for target in targets:
                if not in_package(target) or target == module:
                    continue
                assert target in modules(), f"{module} line {node.lineno}: no module {target}"
                found.append(Edge(module, target, node.lineno, top_level))
                parts = target.split(".")
                for n in range(1, len(parts)):
                    package = ".".join(parts[:n])
                    if not contains(package, module):
                        found.append(Edge(module, package, node.lineno, top_level, via=target))
    return tuple(found)


def contains(package: str, module: str) -> bool:
    """Whether ``module`` is ``package`` or lies inside it."""
    return module == package or module.startswith(package + ".")


def find_cycles(graph_edges: list[Edge]) -> list[tuple[list[str], list[Edge]]]:
    """Each strongly connected component with a cycle (Tarjan), and its shortest cycle through its
    first module (as edges): the modules of the component all import each other, indirectly."""
    out: dict[str, list[Edge]] = {}
    for e in graph_edges:
        out.setdefault(e.source, []).append(e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for e in out.get(v, []):
            if e.target not in index:
                connect(e.target)
                low[v] = min(low[v], low[e.target])
            elif e.target in on_stack:
                low[v] = min(low[v], index[e.target])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted({e.source for e in graph_edges} | {e.target for e in graph_edges}):
        if v not in index:
            connect(v)

    cycles = []
    for component in components:
        members = set(component)
        start = min(component)
        # breadth-first search inside the component: the shortest cycle through `start`
        previous: dict[str, Edge] = {}
        frontier = [start]
        while frontier and start not in previous:
            following = []
            for v in frontier:
                for e in out.get(v, []):
                    if e.target in members and e.target not in previous:
                        previous[e.target] = e
                        following.append(e.target)
            frontier = following
        path = [previous[start]]
        while path[-1].source != start:
            path.append(previous[path[-1].source])
        cycles.append((sorted(component), path[::-1]))
    return cycles


def describe(cycles: list[tuple[list[str], list[Edge]]]) -> str:
    lines = []
    for component, cycle in cycles:
        lines.append(" -> ".join([cycle[0].source] + [e.target for e in cycle]))
        lines.extend(f"    {e}" for e in cycle)
        if len(component) > len(cycle):
            lines.append(f"    (modules in cycles with these: {', '.join(component)})")
    return "\n".join(lines)


def test_no_import_cycle_at_import_time():
    cycles = find_cycles([e for e in edges() if e.top_level])
    assert not cycles, "cycles of top-level imports among coromix modules:\n" + describe(cycles)


def test_no_import_cycle_through_function_level_imports():
    cycles = find_cycles([e for e in edges() if (e.source, e.target) not in LAZY_REEXPORTS])
    assert not cycles, "cycles among coromix modules (counting imports inside functions):\n" + (
        describe(cycles)
    )


@cache
def top_level_names(module: str) -> frozenset[str]:
    """The names ``module`` binds at its top level (definitions, assignments, imports)."""
    names = set()
    todo: list[ast.AST] = [tree(module)]
    while todo:
        for node in ast.iter_child_nodes(todo.pop()):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)  # not its body: those names are local
            elif isinstance(node, ast.Lambda):
                continue
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).partition(".")[0] for a in node.names)
            else:
                todo.append(node)
    return frozenset(names)


def may_use(user: str, owner: str) -> bool:
    """Whether ``user`` may use the private names of ``owner`` (the module docstring's rule)."""
    if user == owner:
        return True
    return is_package(owner) and modules()[user].parent == modules()[owner].parent


@cache
def name_uses(module: str) -> tuple[tuple[str, str, int], ...]:
    return tuple(find_name_uses(module))


def find_name_uses(module: str) -> Iterator[tuple[str, str, int]]:
    """``(owner module, name, line)`` for each name that ``module`` reads from a coromix module:
    by ``from coromix.m import name``, by importing a submodule ``coromix.m.name``, and by an
    attribute ``m.name`` on a name the file binds to a coromix module (the names the owner
    defines at its top level, or its submodules)."""
    bound: dict[str, str] = {}  # local name -> coromix module it is bound to by an import
    for node, _ in imports(module):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not in_package(alias.name):
                    continue
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[alias.name.partition(".")[0]] = PACKAGE
                parent, _, last = alias.name.rpartition(".")
                if parent:
                    yield parent, last, node.lineno
        else:
            base = from_base(module, node)
            if not in_package(base):
                continue
            for alias in node.names:
                yield base, alias.name, node.lineno
                if f"{base}.{alias.name}" in modules():
                    bound[alias.asname or alias.name] = f"{base}.{alias.name}"

    def resolve(expr: ast.expr) -> str | None:
        """The coromix module an expression names (``cm``, ``cm.distributions``), if any."""
        if isinstance(expr, ast.Name):
            return bound.get(expr.id)
        if isinstance(expr, ast.Attribute):
            parent = resolve(expr.value)
            if parent is not None and f"{parent}.{expr.attr}" in modules():
                return f"{parent}.{expr.attr}"
        return None

    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Attribute):
            owner = resolve(node.value)
            if owner is not None and (
                node.attr in top_level_names(owner) or f"{owner}.{node.attr}" in modules()
            ):
                yield owner, node.attr, node.lineno


def private_uses(module: str) -> Iterator[PrivateUse]:
    for owner, name, line in name_uses(module):
        if is_private(name):
            yield PrivateUse(module, owner, name, line)


def test_no_use_of_other_modules_private_names():
    found = [use for m in modules() for use in private_uses(m) if not may_use(use.user, use.owner)]
    assert not found, "private names used outside their module:\n" + "\n".join(map(str, found))


def test_no_module_reads_a_lazy_reexport():
    """Inside coromix, a lazily re-exported name is imported from where it is defined."""
    found = [
        f"{m} line {line}: {owner}.{name} (import it from {target})"
        for m in modules()
        for owner, name, line in name_uses(m)
        for (source, target), names in LAZY_REEXPORTS.items()
        if owner == source and name in names
    ]
    assert not found, "lazy re-exports read inside coromix:\n" + "\n".join(found)


def test_find_cycles_reports_the_shortest_cycle_of_each_group():
    def edge(source: str, target: str) -> Edge:
        return Edge(source, target, 1, True)

    assert find_cycles([edge("a", "b"), edge("b", "c")]) == []
    [(group, cycle)] = find_cycles(
        [edge("a", "b"), edge("b", "c"), edge("c", "a"), edge("b", "a"), edge("c", "d")]
    )
    assert group == ["a", "b", "c"]
    assert cycle == [edge("a", "b"), edge("b", "a")]


def test_the_checks_see_the_imports():
    """The graph is not empty, and the known layers point the right way."""
    targets = {(e.source, e.target) for e in edges()}
    assert ("coromix.joint", "coromix.scoring") in targets
    assert ("coromix.scoring", "coromix.distributions.distribution") in targets
    assert ("coromix.markov", "coromix.markov.api") in targets
    assert not any(e.source == "coromix.pinned" and e.target == "coromix.joint" for e in edges())
