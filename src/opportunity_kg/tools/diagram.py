"""A picture of the model, generated from the ontology so it cannot drift.

:func:`model_diagram` writes a Mermaid class diagram: every ``okg:`` class,
and every object property whose domain and range are both ``okg:`` classes as
an arrow. :func:`write_into` replaces the block between the markers in a
Markdown file (the README) with it.
"""

import re
from pathlib import Path

from rdflib.namespace import OWL, RDF, RDFS

from ..validation.validate import load_ontology
from ..vocabulary import OKG

START, END = "<!-- model-diagram:start -->", "<!-- model-diagram:end -->"


def _local(node):
    return str(node)[len(OKG):]


def model_diagram(ontology=None):
    graph = ontology if ontology is not None else load_ontology()
    classes = sorted(_local(c) for c in graph.subjects(RDF.type, OWL.Class) if str(c).startswith(OKG))
    lines = ["```mermaid", "classDiagram", "    direction LR"]
    lines += [f"    class {name}" for name in classes]
    for prop in sorted(graph.subjects(RDF.type, OWL.ObjectProperty), key=str):
        if not str(prop).startswith(OKG):
            continue
        domain, range_ = graph.value(prop, RDFS.domain), graph.value(prop, RDFS.range)
        if domain is None or range_ is None or not str(domain).startswith(OKG) or not str(range_).startswith(OKG):
            continue
        if graph.value(prop, OWL.inverseOf) is None and (None, OWL.inverseOf, prop) in graph:
            continue  # draw a pair of inverses once
        lines.append(f"    {_local(domain)} --> {_local(range_)} : {_local(prop)}")
    lines.append("```")
    return "\n".join(lines) + "\n"


def write_into(path, diagram=None):
    """Put the diagram between the markers of the Markdown file at ``path``; True if it changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    block = f"{START}\n{diagram or model_diagram()}{END}"
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
