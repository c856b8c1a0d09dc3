"""Checks on the model files themselves, for the people who extend them (``okg lint``).

:func:`lint` runs three checks and returns one :class:`~opportunity_kg.validate.Violation`
per problem:

- the ontology against the style shapes in ``shapes/style/`` (labels,
  definitions, where each term is defined, a domain or the reason for none,
  nothing undefined);
- the data shapes against SHACL-SHACL (the shapes graph for SHACL itself);
- every Turtle file of the ontology, shapes and mappings in canonical form
  (:mod:`opportunity_kg.turtle_format`);
- every canned query: its ``#+`` header lines, and its SPARQL with the parameters bound
  (an example value of each type), parsed by Oxigraph.
"""

import rdflib
from pyshacl.entrypoints import meta_validate

from .errors import OkgError
from .paths import SHAPES_DIR
from .turtle_format import format_files
from .validate import Violation, load_graph_dir, load_ontology, load_shapes, read_report, validate_triples

STYLE_DIR = SHAPES_DIR / "style"


def style_violations(ontology=None, style_shapes=None):
    """The ontology (all modules merged) checked against the style shapes."""
    ontology = ontology if ontology is not None else load_ontology()
    style_shapes = style_shapes if style_shapes is not None else load_graph_dir(STYLE_DIR, "*.shapes.ttl")
    return validate_triples(ontology, shapes=style_shapes, ontology=rdflib.Graph())


def shapes_violations(shapes=None):
    """Shapes (default: the data shapes and the style shapes) checked against SHACL-SHACL."""
    if shapes is None:
        shapes = load_shapes() + load_graph_dir(STYLE_DIR, "*.shapes.ttl")
    _, report, _ = meta_validate(shapes)
    return read_report(report)


#: a value of each parameter type, bound when a canned query is parsed
EXAMPLE_VALUES = {"string": "x", "integer": "1", "number": "1.5", "boolean": "true", "date": "2026-01-01",
                  "iri": "https://example.org/x", "period": "2026-Q1"}


def query_violations(folder=None):
    """Every canned query that cannot be read or does not parse, with its file and what is wrong."""
    import pyoxigraph as ox

    from .paths import QUERIES_DIR
    from .queries import load_all_queries

    queries, broken = load_all_queries(folder or QUERIES_DIR)
    problems = [Violation(focus=str(exc.file), path=None, value=None, shape=None, message=exc.message
                          + (f" (line {exc.line})" if exc.line else "")) for exc in broken.values()]
    empty = ox.Store()
    for query in queries.values():
        args = {p.name: p.choices[0] if p.type == "enum" and p.choices else EXAMPLE_VALUES.get(p.type, "x")
                for p in query.params}
        try:
            empty.query(query.bind(args))
        except (SyntaxError, ValueError, OSError) as exc:
            problems.append(Violation(focus=str(query.path), path=None, value=None, shape=None,
                                      message=f"the query does not parse: {exc}"))
        except OkgError as exc:  # a parameter that cannot be bound
            problems.append(Violation(focus=str(query.path), path=None, value=None, shape=None,
                                      message=str(exc)))
        problems += [Violation(focus=str(query.path), path=None, value=None, shape=None, message=m)
                     for m in fact_problems(query)]
    return problems


def fact_problems(query):
    """What is wrong with a canned query's ``#+ needs:`` and ``#+ uses:`` lines: names that are not
    facts of :data:`opportunity_kg.support.FACTS`, and needs that are facts counted per deal."""
    from .support import FACTS

    known = ", ".join(FACTS)
    out = [f"'#+ {kind}: {name}' names no fact; the facts are: {known}"
           for kind, names in (("needs", query.needs), ("uses", query.uses)) for name in names if name not in FACTS]
    out += [f"'#+ needs: {name}' is counted per deal, so the query answers without it; name it in '#+ uses:'"
            for name in query.needs if name in FACTS and FACTS[name].among is not None]
    return out


def lint(paths=None):
    """Every problem with the model files: style, SHACL-SHACL and canonical form."""
    problems = style_violations()
    problems += shapes_violations()
    problems += query_violations()
    for path in format_files(paths, check=True):
        problems.append(Violation(focus=str(path), path=None, value=None, shape=None,
                                  message="not in canonical Turtle form; run okg fmt"))
    return problems
