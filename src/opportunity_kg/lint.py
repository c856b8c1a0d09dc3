"""Checks on the model files themselves, for the people who extend them (``okg lint``).

:func:`lint` runs three checks and returns one :class:`~opportunity_kg.validate.Violation`
per problem:

- the ontology against the style shapes in ``shapes/style/`` (labels,
  definitions, where each term is defined, a domain or the reason for none,
  nothing undefined);
- the data shapes against SHACL-SHACL (the shapes graph for SHACL itself);
- every Turtle file of the ontology, shapes and mappings in canonical form
  (:mod:`opportunity_kg.turtle_format`).
"""

import rdflib
from pyshacl.entrypoints import meta_validate

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


def lint(paths=None):
    """Every problem with the model files: style, SHACL-SHACL and canonical form."""
    problems = style_violations()
    problems += shapes_violations()
    for path in format_files(paths, check=True):
        problems.append(Violation(focus=str(path), path=None, value=None, shape=None,
                                  message="not in canonical Turtle form; run okg fmt"))
    return problems
