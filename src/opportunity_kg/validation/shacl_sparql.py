"""SHACL core constraints compiled to SPARQL, to validate large data in Oxigraph.

pyshacl validates about 30,000 triples/s on a whole in-memory graph, which
makes it the reference but not the ingest path for big exports.
:func:`compile_shapes` turns each node shape's core constraints into SPARQL
queries (:class:`SparqlRule` s) that find every focus
node and value at fault in one pass over the whole graph: targets
(``sh:targetClass`` with subclasses, ``sh:targetSubjectsOf``,
``sh:targetNode``) and, on property shapes with a predicate path,
``sh:minCount``, ``sh:maxCount``, ``sh:datatype`` (ill-formed literals
included), ``sh:nodeKind``, ``sh:class``, ``sh:minInclusive``,
``sh:maxInclusive``, ``sh:minExclusive``, ``sh:maxExclusive``,
``sh:pattern``, ``sh:maxLength``, ``sh:minLength``, ``sh:in``,
``sh:hasValue``, ``sh:lessThan``, ``sh:lessThanOrEquals``; on node shapes,
``sh:xone`` of property shapes that only require a value. A shape using
anything else is left whole to pyshacl, so the results are always those of a
complete SHACL processor. ``tests/test_shapes.py`` checks both paths agree on
every shape's examples.
"""

import concurrent.futures
import functools
from dataclasses import dataclass

import rdflib
from rdflib.namespace import RDF, SH, XSD

from ..sparql_text import where_group_end, where_group_start

RDFS_SUBCLASS = "http://www.w3.org/2000/01/rdf-schema#subClassOf"
#: datatypes whose well-formedness a SPARQL cast checks
CASTABLE = {XSD.string, XSD.boolean, XSD.integer, XSD.decimal, XSD.float, XSD.double, XSD.dateTime, XSD.date,
            XSD.time, XSD.duration, XSD.dayTimeDuration, XSD.yearMonthDuration}
NODE_KINDS = {
    SH.IRI: "!isIRI(?value)", SH.Literal: "!isLiteral(?value)", SH.BlankNode: "!isBlank(?value)",
    SH.BlankNodeOrIRI: "isLiteral(?value)", SH.IRIOrLiteral: "isBlank(?value)", SH.BlankNodeOrLiteral: "isIRI(?value)",
}
#: the property-shape keys this compiler understands (anything else sends the shape to pyshacl)
PROPERTY_KEYS = {SH.path, SH.message, SH.severity, SH.name, SH.description, SH.order, SH.group,
                 SH.minCount, SH.maxCount, SH.datatype, SH.nodeKind, SH["class"], SH.minInclusive, SH.maxInclusive,
                 SH.minExclusive, SH.maxExclusive, SH.pattern, SH.flags, SH.maxLength, SH.minLength, SH["in"],
                 SH.hasValue, SH.lessThan, SH.lessThanOrEquals, RDF.type,
                 rdflib.RDFS.label, rdflib.RDFS.comment}
NODE_KEYS = {RDF.type, SH.targetClass, SH.targetSubjectsOf, SH.targetNode, SH.property, SH.message, SH.severity,
             SH.xone, SH.sparql, SH.deactivated, rdflib.RDFS.label, rdflib.RDFS.comment}


class Unsupported(Exception):
    """A shape uses something this compiler does not translate."""


def _term(node):
    if isinstance(node, rdflib.URIRef):
        return f"<{node}>"
    if isinstance(node, rdflib.Literal):
        return node.n3()
    raise Unsupported(f"blank node {node} as a value")


def _deactivated(g, node):
    """Whether a shape (or a SPARQL constraint) is switched off (``sh:deactivated true``)."""
    return any(value.toPython() is True for value in g.objects(node, SH.deactivated) if isinstance(value, rdflib.Literal))


def _targets(g, shape):
    parts = [f"{{ ?this a/<{RDFS_SUBCLASS}>* <{c}> }}" for c in g.objects(shape, SH.targetClass)]
    parts += [f"{{ ?this <{p}> [] }}" for p in g.objects(shape, SH.targetSubjectsOf)]
    parts += [f"{{ [] <{p}> ?this }}" for p in g.objects(shape, SH.targetObjectsOf)]
    parts += [f"{{ BIND ({_term(n)} AS ?this) }}" for n in g.objects(shape, SH.targetNode)]
    if (shape, RDF.type, rdflib.RDFS.Class) in g:
        parts.append(f"{{ ?this a/<{RDFS_SUBCLASS}>* <{shape}> }}")
    return " UNION ".join(parts)


def _property_checks(g, prop):
    """(component, SPARQL WHERE body after the target, default message) for one property shape."""
    keys = set(g.predicates(prop))
    if keys - PROPERTY_KEYS:
        raise Unsupported(f"property shape uses {sorted(map(str, keys - PROPERTY_KEYS))}")
    path = g.value(prop, SH.path)
    if not isinstance(path, rdflib.URIRef):
        raise Unsupported("a property path other than one predicate")
    p = f"<{path}>"
    checks = []
    value_filters = []
    v = g.value
    if v(prop, SH.minCount) is not None:
        n = int(v(prop, SH.minCount))
        body = (f"FILTER NOT EXISTS {{ ?this {p} ?value }} }}" if n == 1 else  # the common case, without grouping
                f"OPTIONAL {{ ?this {p} ?value }} }} GROUP BY ?this HAVING (COUNT(DISTINCT ?value) < {n})")
        checks.append(("MinCount", body, f"fewer than {n} values", False))
    if v(prop, SH.maxCount) is not None:
        n = int(v(prop, SH.maxCount))
        body = (f"?this {p} ?value . ?this {p} ?other FILTER (!sameTerm(?value, ?other)) }}" if n == 1 else
                f"?this {p} ?value }} GROUP BY ?this HAVING (COUNT(DISTINCT ?value) > {n})")
        checks.append(("MaxCount", body, f"more than {n} values", False))
    datatype = v(prop, SH.datatype)
    if datatype is not None:
        well_formed = f"BIND (<{datatype}>(?value) AS ?cast) " if datatype in CASTABLE else ""
        bad = "!BOUND(?cast)" if well_formed else "false"
        if datatype == RDF.langString:
            value_filters.append(("Datatype", "", "!isLiteral(?value) || LANG(?value) = \"\"", f"not of datatype {datatype}"))
        else:
            value_filters.append(("Datatype", well_formed,
                                  f"!isLiteral(?value) || DATATYPE(?value) != <{datatype}> || {bad}",
                                  f"not of datatype {datatype}"))
    kind = v(prop, SH.nodeKind)
    if kind is not None:
        value_filters.append(("NodeKind", "", NODE_KINDS[kind], f"not of node kind {kind}"))
    cls = v(prop, SH["class"])
    if cls is not None:
        value_filters.append(("Class", "", f"NOT EXISTS {{ ?value a/<{RDFS_SUBCLASS}>* <{cls}> }}",
                              f"not an instance of {cls}"))
    for key, op in ((SH.minInclusive, ">="), (SH.maxInclusive, "<="), (SH.minExclusive, ">"), (SH.maxExclusive, "<")):
        bound = v(prop, key)
        if bound is not None:
            value_filters.append((key.split("#")[1][0].upper() + key.split("#")[1][1:], "",
                                  f"!COALESCE(?value {op} {_term(bound)}, false)", f"not {op} {bound}"))
    pattern = v(prop, SH.pattern)
    if pattern is not None:
        flags = v(prop, SH.flags)
        args = f"{_term(rdflib.Literal(str(pattern)))}" + (f", {_term(rdflib.Literal(str(flags)))}" if flags else "")
        value_filters.append(("Pattern", "", f"isBlank(?value) || !REGEX(STR(?value), {args})",
                              f"does not match {pattern}"))
    for key, op in ((SH.maxLength, ">"), (SH.minLength, "<")):
        n = v(prop, key)
        if n is not None:
            value_filters.append(("Length", "", f"isBlank(?value) || STRLEN(STR(?value)) {op} {int(n)}",
                                  f"length {op} {n}"))
    allowed = v(prop, SH["in"])
    if allowed is not None:
        members = ", ".join(_term(m) for m in rdflib.collection.Collection(g, allowed))
        value_filters.append(("In", "", f"?value NOT IN ({members})", "not one of the allowed values"))
    for key, op in ((SH.lessThan, "<"), (SH.lessThanOrEquals, "<=")):
        other = v(prop, key)
        if other is not None:
            checks.append(("LessThan", f"?this {p} ?value . ?this <{other}> ?other "
                                       f"FILTER (!COALESCE(?value {op} ?other, false)) }}",
                           f"not {op} the value of {other}", True))
    has = v(prop, SH.hasValue)
    if has is not None:
        checks.append(("HasValue", f"FILTER NOT EXISTS {{ ?this {p} {_term(has)} }} }}",
                       f"does not have the value {has}", False))
    for name, bind, condition, message in value_filters:
        checks.append((name, f"?this {p} ?value . {bind}FILTER ({condition}) }}", message, True))
    return path, checks


def _xone_check(g, shape):
    members = list(rdflib.collection.Collection(g, g.value(shape, SH.xone)))
    parts = []
    for member in members:
        keys = set(g.predicates(member)) - {RDF.type}
        path = g.value(member, SH.path)
        if keys != {SH.path, SH.minCount} or int(g.value(member, SH.minCount)) != 1 \
                or not isinstance(path, rdflib.URIRef):
            raise Unsupported("sh:xone of shapes other than 'has a value for one predicate'")
        parts.append(f"IF(EXISTS {{ ?this <{path}> ?any{len(parts)} }}, 1, 0)")
    return f"BIND (?this AS ?value) FILTER (({' + '.join(parts)}) != 1) }}"


@dataclass(frozen=True)
class Violation:
    """One validation result, from either path: its focus node, path, value, message, shape and
    severity (``sh:Violation`` unless the shape says ``sh:Warning`` or ``sh:Info``)."""
    focus: str
    path: str | None
    value: str | None
    message: str
    shape: str | None
    severity: str = str(SH.Violation)

    @property
    def is_violation(self):
        return self.severity == str(SH.Violation)


@dataclass
class SparqlRule:
    """A SHACL-SPARQL constraint run once over the whole graph instead of once per focus node."""

    shape: str
    query: str
    message: str
    severity: str
    path: str | None = None  # the result path, for core constraints compiled to SPARQL
    component: str | None = None
    body: str = ""
    has_value: bool = False

    @classmethod
    def from_shapes(cls, g, shape, constraint):
        select = str(g.value(constraint, SH.select))
        prefixes = []
        for holder in g.objects(constraint, SH.prefixes):
            for declaration in g.objects(holder, SH.declare):
                prefixes.append(f"PREFIX {g.value(declaration, SH.prefix)}: <{g.value(declaration, SH.namespace)}>")
        message = g.value(constraint, SH.message) or g.value(shape, SH.message) or "breaks a rule"
        severity = g.value(shape, SH.severity) or SH.Violation
        targets = _targets(g, shape)
        if not targets or _deactivated(g, shape) or _deactivated(g, constraint):
            # no focus nodes, or switched off: nothing to check (as in pyshacl)
            return cls(str(shape), "", str(message), str(severity))
        classes = set(g.objects(shape, SH.targetClass)) | ({shape} if (shape, RDF.type, rdflib.RDFS.Class) in g else set())
        text = "\n".join(prefixes) + "\n" + select.replace("$this", "?this")
        found = focus_in(text, classes, set(g.objects(shape, SH.targetSubjectsOf)))
        if found != "targets":
            # each focus node once (a record that is the subject of several target properties would
            # otherwise be checked, and reported, once for each): before the rule's own patterns, or
            # after them where those bind the focus node in every answer, which reads the focus nodes
            # once instead of the rule's patterns once per focus node (StageHistoryOrderShape)
            focus = f"\n  {{ SELECT DISTINCT ?this WHERE {{ {targets} }} }}\n"
            at = where_group_end(text) if found == "bound" else where_group_start(text)
            text = text[:at] + focus + text[at:]
        return cls(str(shape), text, str(message), str(severity))

    def run(self, store, graphs=None, every=False):
        """The rule's results over ``store``'s default graph, or over the union of ``graphs``
        (a list of named nodes) when they are given; ``every``: they are all the store's named
        graphs (Oxigraph reads their union faster than the same graphs listed)."""
        if not self.query:  # no focus nodes
            return
        if every:
            results = store.query(self.query, use_default_graph_as_union=True)
        elif graphs:
            results = store.query(self.query, default_graph=graphs)
        else:
            results = store.query(self.query)
        names = [v.value for v in results.variables]
        seen = set()  # pyshacl reports solutions that give the same result once
        for solution in results:
            values = {n: t for n, t in zip(names, solution) if t is not None}
            message = self.message
            for name, term in values.items():
                message = message.replace("{?" + name + "}", term.value).replace("{$" + name + "}", term.value)
            path = values.get("path")  # SHACL-SPARQL: a ?path the query binds is the result path
            if self.component is None:  # SHACL-SPARQL: sh:value is ?value, else the focus node
                value = values.get("value", values["this"])
            else:
                value = values.get("value") if self.has_value else None
            found = Violation(values["this"].value, path.value if path is not None else self.path,
                              value.value if value is not None else None, message, self.shape, self.severity)
            if found not in seen:
                seen.add(found)
                yield found


#: the algebra operators through which :func:`focus_in` follows a query: those that keep every
#: variable of their (first) operand bound in each answer
_KEEPS_BINDINGS = {"Distinct", "Reduced", "Filter", "Extend", "ToMultiSet", "OrderBy", "Graph"}


@functools.lru_cache(maxsize=256)
def _algebra(query):
    """rdflib's algebra of a query (None if it cannot parse it), made on a thread of its own: the
    parser's failed attempts leave reference cycles through their tracebacks, and a traceback's
    frames hold every frame above them, here the ingest's with its staged store, which would then
    stay open until Python collects the cycles (a store of the same path cannot be staged again
    meanwhile)."""
    def parse():
        from rdflib.plugins.sparql import prepareQuery
        try:
            return prepareQuery(query).algebra
        except Exception:  # noqa: BLE001  (any parse failure)
            return None
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="okg-parse") as pool:
        return pool.submit(parse).result()


def focus_in(query, classes=(), subjects_of=()):
    """What a SHACL-SPARQL select (``query``, ``$this`` written ``?this``) says of its focus node in
    each answer, outside any OPTIONAL or MINUS:

    - "targets": a triple pattern of its own makes ``?this`` one of the shape's targets (an instance
      of one of ``classes``, or the subject of one of ``subjects_of``), so its answers are already
      those of its focus nodes, each once: the focus nodes need not be read at all
      (KnownReferenceShape at 10,000 opportunities: 1.0 s against 4.4 s);
    - "bound": a triple pattern of its own binds ``?this``: joining its answers with the focus
      nodes gives what evaluating it for each focus node gives (the SHACL pre-binding), so the
      focus nodes may come after its patterns;
    - None: neither, or in doubt (grouping, a subquery without ``?this``, a query rdflib cannot
      parse): the focus nodes come first, as the pre-binding does."""
    algebra = _algebra(query)
    if algebra is None:  # a query rdflib cannot parse: the focus nodes go first, as always
        return None
    this, rdf_type = rdflib.Variable("this"), RDF.type
    classes, subjects_of = set(classes), set(subjects_of)

    def walk(node):
        """None, "bound" or "targets" for one operator of the algebra."""
        name = getattr(node, "name", None)
        if name == "Project":  # the query's, or a subquery's, which must keep ?this to bind it outside
            return walk(node.p) if this in node.PV else None
        if name in _KEEPS_BINDINGS:
            return walk(node.p)
        if name == "BGP":
            own = [t for t in node.triples if t[0] == this]
            if any((p == rdf_type and o in classes) or p in subjects_of for _, p, o in own):
                return "targets"
            return "bound" if any(this in t for t in node.triples) else None
        if name == "Join":
            found = {walk(node.p1), walk(node.p2)}
            return "targets" if "targets" in found else "bound" if "bound" in found else None
        if name in ("LeftJoin", "Minus"):
            return walk(node.p1)
        if name == "Union":
            found = {walk(node.p1), walk(node.p2)}
            return None if None in found else "bound" if "bound" in found else "targets"
        return None

    return walk(algebra.p)


def compile_shapes(shapes, reasons=None):
    """SPARQL rules for the core constraints of ``shapes`` (an rdflib graph); returns (rules, rest),
    where ``rest`` is a shapes graph of what pyshacl must still check (shapes this compiler does not
    translate, whole), and the SHACL-SPARQL constraints are left out of both (see
    :func:`opportunity_kg.validation.validate.split_shapes`)."""

    rules, rest_shapes = [], []
    for shape in sorted(set(shapes.subjects(RDF.type, SH.NodeShape)), key=str):
        if _deactivated(shapes, shape):
            continue
        targets = _targets(shapes, shape)
        try:
            keys = set(shapes.predicates(shape))
            if keys - NODE_KEYS:
                raise Unsupported(f"node shape uses {sorted(map(str, keys - NODE_KEYS))}")
            compiled = []
            severity = str(shapes.value(shape, SH.severity) or SH.Violation)
            if shapes.value(shape, SH.xone) is not None:
                message = shapes.value(shape, SH.message) or "does not conform to exactly one of its shapes"
                compiled.append(SparqlRule(str(shape), "", str(message), severity, None, "Xone",
                                           body=_xone_check(shapes, shape), has_value=True))
            for prop in shapes.objects(shape, SH.property):
                path, checks = _property_checks(shapes, prop)
                message = shapes.value(prop, SH.message)
                prop_severity = str(shapes.value(prop, SH.severity) or SH.Violation)
                for component, body, default, has_value in checks:
                    compiled.append(SparqlRule(str(prop), "", str(message or default), prop_severity, str(path),
                                               component, body=body, has_value=has_value))
        except Unsupported as exc:
            rest_shapes.append(shape)
            if reasons is not None:  # (shape, what the SPARQL path does not compile in it)
                reasons.append((str(shape), str(exc)))
            continue
        for rule in compiled:
            rule.query = f"SELECT DISTINCT ?this{' ?value' if rule.has_value else ''} WHERE {{ {targets} . {rule.body}"
        rules += compiled if targets else []
    rest = rdflib.Graph()
    for prefix, namespace in shapes.namespaces():  # pyshacl's default messages name terms by their prefixes
        rest.bind(prefix, namespace, override=False)
    for shape in rest_shapes:
        _copy_shape(shapes, shape, rest, whole=set(rest_shapes))
    return rules, rest


#: the keys through which a shape uses another shape, which may be a named one (``sh:node ex:Address``)
SHAPE_REFERENCES = {SH.node, SH["and"], SH["or"], SH["not"], SH.xone, SH.qualifiedValueShape, SH.property}
#: the keys that give a shape its own focus nodes
TARGET_KEYS = {SH.targetClass, SH.targetNode, SH.targetSubjectsOf, SH.targetObjectsOf, SH.target}


def _copy_shape(source, shape, target, whole=()):
    """Copy a shape with everything reachable from it through blank nodes, and the named shapes it uses
    (``sh:node``, ``sh:and``, ...), so pyshacl checks it as a full processor would. A named shape it
    uses that is compiled to SPARQL itself is copied without its targets: its own focus nodes are
    already checked there, and would be reported twice."""
    todo, seen = [(shape, True)], set()
    while todo:
        node, own = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        for p, o in source.predicate_objects(node):
            if p == SH.sparql or (not own and p in TARGET_KEYS):
                continue
            target.add((node, p, o))
            if isinstance(o, rdflib.BNode):
                todo.append((o, own))
            elif isinstance(o, rdflib.URIRef) and p in SHAPE_REFERENCES and (o, None, None) in source:
                todo.append((o, o in whole))
            elif p == RDF.first and isinstance(o, rdflib.URIRef) and (o, None, None) in source:
                todo.append((o, o in whole))  # a named shape in an sh:and / sh:or list


def uncompiled_shapes(shapes):
    """(shape, why) for each shape the SPARQL path does not compile: pyshacl checks it, with the named
    shapes it uses, so its results are a full processor's, but it is slower on a big export."""
    reasons = []
    compile_shapes(shapes, reasons)
    return reasons
