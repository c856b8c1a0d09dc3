"""The package's layout keeps the data flow readable: modules sit in layers along it, each imports
only from its own layer or those below (also inside functions), and no two modules import each other
round a circle. A new module must be given its layer here (the README's "Layout" names them)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "opportunity_kg"

#: lowest first, along the data flow: what every stage uses; reading; mapping; validation; the store;
#: the canned queries and what they need; the ingest pipeline; the forecast and the matching; the
#: user's side (web, CLI, the model tools, the samples)
LAYERS = [
    {"opportunity_kg", "errors", "settings", "paths", "vocabulary", "periods", "progress", "sparql_text"},
    {"readers"},
    {"mapping"},
    {"validation"},
    {"store"},
    {"analytics", "analytics.queries", "analytics.results", "analytics.support"},
    {"ingest"},
    {"analytics.forecast", "analytics.match"},
    {"web", "cli", "tools", "samples"},
]


def modules():
    """Every module of the package by dotted name (a package by its own name)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports():
    """module -> the package's modules it imports, anywhere in its text."""
    found = modules()
    graph = {name: set() for name in found}
    for name, path in found.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
                elif (node.module or "").startswith("opportunity_kg"):
                    base = node.module
                else:
                    continue
                for alias in node.names:
                    target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in found else base
                    if target in found and target != name:
                        graph[name].add(target)
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in found and a.name != name}
    return graph


def layer_of(module):
    """The layer of a module: of its most specific name in :data:`LAYERS` (``analytics.forecast``, else
    ``analytics``; a module of a sub-package is in its sub-package's layer)."""
    parts = module.split(".")[1:] or ["opportunity_kg"]
    for length in range(len(parts), 0, -1):
        name = ".".join(parts[:length])
        for i, members in enumerate(LAYERS):
            if name in members:
                return i
    return None


def test_every_module_has_a_layer():
    assert [m for m in modules() if layer_of(m) is None] == []


def test_imports_point_down_the_layers():
    upward = [f"{m} imports {t}" for m, targets in imports().items() for t in targets
              if layer_of(t) > layer_of(m)]
    assert upward == []


def test_no_import_circles():
    graph = imports()
    circles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_the_analysis_sees_imports_inside_functions():
    """An import inside a function counts as much as one at the top."""
    graph = imports()
    assert "opportunity_kg.mapping.rml_legacy" in graph["opportunity_kg.mapping.rml"]  # imported inside load_mapping
    assert layer_of("opportunity_kg.web.app") > layer_of("opportunity_kg.store")
    assert layer_of("opportunity_kg.analytics.support") < layer_of("opportunity_kg.ingest.pipeline") \
        < layer_of("opportunity_kg.analytics.forecast")
