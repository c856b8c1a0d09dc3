"""Canonical Turtle: one layout for every Turtle file, so diffs show only real changes.

:func:`format_turtle` rewrites a Turtle document in a fixed form: the file's
opening comment block kept, then the prefixes it declares and uses (sorted),
then one block per subject. Subjects come ontology header first, then classes,
properties, individuals and everything else, each group sorted by IRI;
``a`` comes first, then label, definition and comment, then the other
predicates by name; objects are sorted. Blank nodes used once are written
inline as ``[ ... ]`` and RDF lists as ``( ... )``. Comments other than the
opening block are not kept (put explanations in ``rdfs:comment`` instead, where
the documentation shows them). The result is checked to hold exactly the same
triples as the input before it is returned.

:func:`format_files` runs it over files (``okg fmt``), or only checks them.
"""

import re
from pathlib import Path

import rdflib
from rdflib.compare import isomorphic
from rdflib.namespace import OWL, RDF, RDFS, SKOS, XSD

from ..errors import OkgError
from ..paths import MAPPINGS_DIR, ONTOLOGY_DIR, SHAPES_DIR

DEFAULT_FOLDERS = (ONTOLOGY_DIR, SHAPES_DIR, MAPPINGS_DIR)
INDENT = "    "
INLINE_WIDTH = 90
SH = rdflib.Namespace("http://www.w3.org/ns/shacl#")
RML = rdflib.Namespace("http://w3id.org/rml/")

TYPE_RANK = [OWL.Ontology, OWL.Class, RDFS.Class, OWL.ObjectProperty, OWL.DatatypeProperty,
             OWL.AnnotationProperty, RDF.Property, SKOS.ConceptScheme, SKOS.Concept, OWL.NamedIndividual,
             SH.NodeShape, SH.PropertyShape, RML.TriplesMap]
FIRST_PREDICATES = [RDF.type, RDFS.label, SKOS.prefLabel, SKOS.definition, RDFS.comment, SH.path,
                    RML.logicalSource, RML.subjectMap, RML.predicate]
_LOCAL = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$|^$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?\d*\.\d+$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class _Writer:
    def __init__(self, graph, prefixes):
        self.graph = graph
        self.prefixes = sorted(prefixes.items(), key=lambda kv: -len(kv[1]))
        self.used = set()
        refs = {}
        for _, _, o in graph:
            if isinstance(o, rdflib.BNode):
                refs[o] = refs.get(o, 0) + 1
        # a blank node is written inline where it is the object of exactly one triple
        self.inline = {b for b, n in refs.items() if n == 1}
        self.labels = {}

    def iri(self, node):
        text = str(node)
        for prefix, namespace in self.prefixes:
            if text.startswith(namespace) and _LOCAL.match(text[len(namespace):]):
                self.used.add(prefix)
                return f"{prefix}:{text[len(namespace):]}"
        return f"<{text}>"

    def literal(self, node):
        text, datatype = str(node), node.datatype
        if datatype == XSD.integer and _INTEGER.match(text):
            return text
        if datatype == XSD.decimal and _DECIMAL.match(text):
            return text
        if datatype == XSD.boolean and text in ("true", "false"):
            return text
        if "\n" in text:
            body = text.replace("\\", "\\\\")
            body = re.sub(r'"(?=")|"$', '\\"', body)
            quoted = f'"""{body}"""'
        else:
            quoted = '"' + "".join(_ESCAPES.get(c, c) for c in text) + '"'
        if node.language:
            return f"{quoted}@{node.language}"
        if datatype is not None and datatype != XSD.string:
            return f"{quoted}^^{self.iri(datatype)}"
        return quoted

    def list_items(self, node):
        items = []
        while node != RDF.nil:
            if not (isinstance(node, rdflib.BNode) and node in self.inline or items == []):
                return None
            keys = set(self.graph.predicates(node))
            first = list(self.graph.objects(node, RDF.first))
            rest = list(self.graph.objects(node, RDF.rest))
            if keys != {RDF.first, RDF.rest} or len(first) != 1 or len(rest) != 1:
                return None
            items.append(first[0])
            node = rest[0]
        return items

    def term(self, node, depth):
        if isinstance(node, rdflib.Literal):
            return self.literal(node)
        if isinstance(node, rdflib.BNode):
            if node in self.inline:
                items = self.list_items(node)
                if items is not None:
                    return "( " + " ".join(self.term(i, depth + 1) for i in items) + " )" if items else "()"
                return self.blank(node, depth)
            return self.labels.setdefault(node, f"_:b{len(self.labels) + 1}")
        if node == RDF.nil:
            return "()"
        return self.iri(node)

    def predicate_lines(self, subject, depth):
        def rank(p):
            return (FIRST_PREDICATES.index(p) if p in FIRST_PREDICATES else len(FIRST_PREDICATES), self.iri(p))

        lines = []
        for p in sorted(set(self.graph.predicates(subject)), key=rank):
            objects = sorted(self.term(o, depth + 1) for o in self.graph.objects(subject, p))
            name = "a" if p == RDF.type else self.iri(p)
            one_line = f"{name} " + " , ".join(objects)
            if all("\n" not in o for o in objects) and len(one_line) + len(INDENT) * (depth + 1) <= INLINE_WIDTH:
                lines.append(one_line)
            elif all(o.startswith("[") for o in objects):  # blank nodes as blocks in a row: ] , [
                blocks = sorted(self.blank(o, depth + 1, block=True) for o in self.graph.objects(subject, p))
                lines.append(f"{name} " + " , ".join(blocks))
            else:
                lines.append(f"{name} " + f" ,\n{INDENT * (depth + 2)}".join(objects))
        return lines

    def blank(self, node, depth, block=False):
        lines = self.predicate_lines(node, depth)
        one_line = "[ " + " ; ".join(lines) + " ]"
        if not block and "\n" not in one_line and len(one_line) + depth * len(INDENT) <= INLINE_WIDTH:
            return one_line
        pad = INDENT * (depth + 1)
        return "[\n" + pad + f" ;\n{pad}".join(lines) + "\n" + INDENT * depth + "]"

    def subject_block(self, subject):
        head = self.term(subject, 0) if not (isinstance(subject, rdflib.BNode)) else \
            self.labels.setdefault(subject, f"_:b{len(self.labels) + 1}")
        lines = self.predicate_lines(subject, 0)
        return head + " " + f" ;\n{INDENT}".join(lines) + " ."

    def document(self):
        def rank(s):
            types = set(self.graph.objects(s, RDF.type))
            group = min([TYPE_RANK.index(t) for t in types if t in TYPE_RANK], default=len(TYPE_RANK))
            return (isinstance(s, rdflib.BNode), group, str(s) if not isinstance(s, rdflib.BNode) else "")

        subjects = [s for s in set(self.graph.subjects()) if not (isinstance(s, rdflib.BNode) and s in self.inline)]
        blocks = [self.subject_block(s) for s in sorted(subjects, key=rank)]
        return blocks


def format_turtle(text, name="<text>"):
    """``text`` (a Turtle document) in canonical form; :class:`OkgError` naming ``name`` if it does not parse."""
    graph = rdflib.Graph(bind_namespaces="none")
    try:
        graph.parse(data=text, format="turtle")
    except Exception as exc:  # rdflib raises several kinds of parse errors
        raise OkgError(f"not valid Turtle: {exc}", file=name) from None
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.rstrip())
    writer = _Writer(graph, {p: str(ns) for p, ns in graph.namespaces()})
    blocks = writer.document()
    prefixes = [f"@prefix {p}: <{ns}> ." for p, ns in sorted(graph.namespaces()) if p in writer.used]
    parts = ["\n".join(header)] if header else []
    parts += ["\n".join(prefixes)] + blocks
    result = "\n\n".join(parts) + "\n"
    if not isomorphic(graph, rdflib.Graph(bind_namespaces="none").parse(data=result, format="turtle")):
        raise OkgError("canonical form would change the triples; file left as it is", file=name)
    return result


def turtle_files(paths=None):
    """The Turtle files named, or found under the named folders (default: ontology, shapes, mappings)."""
    found = []
    for path in map(Path, paths or DEFAULT_FOLDERS):
        found += sorted(path.rglob("*.ttl")) if path.is_dir() else [path]
    return found


def format_files(paths=None, check=False):
    """Put each Turtle file in canonical form (or with ``check``, only look); the files that were not."""
    changed = []
    for path in turtle_files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise OkgError(f"cannot read: {exc.strerror}", file=path) from None
        canonical = format_turtle(text, path)
        if canonical != text:
            changed.append(path)
            if not check:
                path.write_text(canonical, encoding="utf-8")
    return changed
