"""The ontology as documentation and as downloads, for people and for RDF clients.

:func:`documentation_html` renders the ontology (all modules, as one) to HTML
with pyLODE; :func:`ontology_rdf` serialises the same merged ontology as
Turtle, N-Triples, RDF/XML or JSON-LD; :func:`build_docs` writes both to a
folder (``okg docs``). The web layer serves them at ``/ontology`` by content
negotiation, so the ontology IRI answers a browser with HTML and an RDF client
with RDF.
"""

import functools
import logging
from pathlib import Path

import rdflib
from rdflib.namespace import DCTERMS, OWL, RDF, RDFS, SKOS

from ..paths import ONTOLOGY_DIR
from ..validation.validate import load_ontology
from ..vocabulary import OKG

ONTOLOGY_IRI = rdflib.URIRef("https://w3id.org/opportunity-kg/ontology")

# format name -> (rdflib serializer, media type, file suffix)
RDF_FORMATS = {
    "turtle": ("turtle", "text/turtle", "ttl"),
    "ntriples": ("nt", "application/n-triples", "nt"),
    "rdfxml": ("xml", "application/rdf+xml", "rdf"),
    "jsonld": ("json-ld", "application/ld+json", "jsonld"),
}
# what a client may ask for, by media type, format= value or file suffix
DOC_FORMATS = {
    "text/html": "html", "application/xhtml+xml": "html", "html": "html",
    "text/turtle": "turtle", "application/x-turtle": "turtle", "turtle": "turtle", "ttl": "turtle",
    "application/n-triples": "ntriples", "ntriples": "ntriples", "nt": "ntriples",
    "application/rdf+xml": "rdfxml", "rdfxml": "rdfxml", "rdf": "rdfxml", "xml": "rdfxml",
    "application/ld+json": "jsonld", "jsonld": "jsonld", "json-ld": "jsonld",
}


def documentation_graph(ontology=None):
    """The ontology as one document: the modules' own ``owl:Ontology`` headers and
    imports folded into the top ontology, and standard terms kept only as labels
    (they are documented where they are defined, not here)."""
    source = ontology if ontology is not None else load_ontology()
    graph = rdflib.Graph()
    for prefix, namespace in source.namespaces():
        graph.bind(prefix, namespace)
    modules = {s for s in source.subjects(RDF.type, OWL.Ontology) if s != ONTOLOGY_IRI}
    for s, p, o in source:
        if s in modules or p == OWL.imports:
            continue
        if not isinstance(s, rdflib.BNode) and not str(s).startswith((OKG, str(ONTOLOGY_IRI))):
            if p not in (RDFS.label, SKOS.prefLabel):
                continue
        graph.add((s, p, o))
    title = source.value(ONTOLOGY_IRI, DCTERMS.title) or source.value(ONTOLOGY_IRI, RDFS.label)
    if title is not None:
        graph.set((ONTOLOGY_IRI, DCTERMS.title, title))
    definition = source.value(ONTOLOGY_IRI, SKOS.definition)
    if definition is not None and source.value(ONTOLOGY_IRI, DCTERMS.description) is None:
        graph.set((ONTOLOGY_IRI, DCTERMS.description, definition))
    return graph


@functools.cache
def _html(folder):
    root = logging.getLogger()
    level, quiet = root.level, logging.NullHandler()
    root.addHandler(quiet)  # pyLODE logs through the root logger; keep it from configuring one
    try:
        from pylode import OntPub

        graph = documentation_graph(load_ontology(folder))
        publication = OntPub(ontology=graph, sort_subjects=True)
    finally:
        root.removeHandler(quiet)
        root.setLevel(level)
    # anchor each term by its local name, so <ontology#Opportunity> lands on Opportunity
    for term in set(graph.subjects()):
        if str(term).startswith(OKG):
            publication.fids[str(term)] = str(term)[len(OKG):]
    return publication.make_html()


def documentation_html(folder=ONTOLOGY_DIR):
    """The ontology's HTML documentation made by pyLODE (cached per process)."""
    return _html(Path(folder))


@functools.cache
def _rdf(folder, fmt, module):
    if module is None:
        graph = load_ontology(folder)
    else:
        graph = rdflib.Graph().parse(Path(folder) / f"{module}.ttl", format="turtle")
    return graph.serialize(format=RDF_FORMATS[fmt][0])


def modules(folder=ONTOLOGY_DIR):
    """The names of the ontology's modules (``account`` for ``<ontology/account>``)."""
    return sorted(p.stem for p in Path(folder).glob("*.ttl") if p.stem != "opportunity-kg")


def ontology_rdf(fmt="turtle", folder=ONTOLOGY_DIR, module=None):
    """The whole ontology (every module), or one ``module``, in one RDF document of format ``fmt``."""
    return _rdf(Path(folder), fmt, module)


def build_docs(out_dir, folder=ONTOLOGY_DIR):
    """Write ``index.html`` and the ontology in every RDF format to ``out_dir``; the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "index.html"]
    written[0].write_text(documentation_html(folder), encoding="utf-8")
    for fmt, (_, _, suffix) in RDF_FORMATS.items():
        path = out / f"opportunity-kg.{suffix}"
        path.write_text(ontology_rdf(fmt, folder), encoding="utf-8")
        written.append(path)
    return written
