"""Checks on the model files themselves, for the people who extend them (``okg lint``).

:func:`lint` runs three checks and returns one :class:`~opportunity_kg.validation.validate.Violation`
per problem:

- the ontology against the style shapes in ``shapes/style/`` (labels,
  definitions, where each term is defined, a domain or the reason for none,
  nothing undefined);
- the data shapes against SHACL-SHACL (the shapes graph for SHACL itself);
- every Turtle file of the ontology, shapes and mappings in canonical form
  (:mod:`opportunity_kg.tools.turtle_format`);
- every canned query: its ``#+`` header lines, and its SPARQL with the parameters bound
  (an example value of each type), parsed by Oxigraph;
- every mapping: it compiles (functions and their parameters known, columns and templates well
  formed), every ``okg:`` class, property and constant it uses is defined in the ontology, and no
  datatype or language is set on a constant (RML ignores it there); with an export
  (``okg lint --export DIR``), the columns the mappings of its system read that its files lack
  (:func:`missing_columns`: notes, not problems, since an export may lack an optional column).
"""

import difflib

import rdflib
from pyshacl.entrypoints import meta_validate

from ..errors import OkgError
from ..paths import SHAPES_DIR
from .turtle_format import format_files
from ..validation.validate import Violation, load_graph_dir, load_ontology, load_shapes, read_report, validate_triples

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

    from ..paths import QUERIES_DIR
    from ..analytics.queries import load_all_queries

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
    facts of :data:`opportunity_kg.analytics.support.FACTS`, and needs that are facts counted per deal."""
    from ..analytics.support import FACTS

    known = ", ".join(FACTS)
    out = [f"'#+ {kind}: {name}' names no fact; the facts are: {known}"
           for kind, names in (("needs", query.needs), ("uses", query.uses)) for name in names if name not in FACTS]
    out += [f"'#+ needs: {name}' is counted per deal, so the query answers without it; name it in '#+ uses:'"
            for name in query.needs if name in FACTS and FACTS[name].among is not None]
    return out


def _problem(focus, message):
    return Violation(focus=str(focus), path=None, value=None, shape=None, message=message)


def mapping_violations(mappings_dir=None, ontology=None):
    """What is wrong with the mappings of every system in ``mappings_dir``: each compiles, uses only
    ``okg:`` terms the ontology defines, and sets no datatype or language on a constant."""
    from ..mapping.rml import load_mapping
    from ..vocabulary import OKG

    ontology = ontology if ontology is not None else load_ontology()
    defined = {str(s) for s in ontology.subjects() if str(s).startswith(OKG)}
    problems = []
    for path in _all_mapping_files(mappings_dir):
        try:
            mapping = load_mapping(path)
        except OkgError as exc:
            problems.append(_problem(path, f"the mapping does not compile: {exc.message}"))
            continue
        for tm in mapping.triples_maps:
            problems += [_problem(path, m) for m in _term_problems(tm, defined)]
    return problems


def missing_columns(export, mappings_dir=None, source=None):
    """(system, notes): for the system ``export`` came from (or ``source``), each column a mapping
    reads that the export file it reads lacks. The ingest reads such a column as empty and says so;
    here a data architect sees them all before loading (a misspelt column, an alias to add)."""
    from pathlib import Path

    from ..errors import DataError
    from ..ingest.read import detect_source, export_files, files_for, mapping_files
    from ..paths import MAPPINGS_DIR
    from ..mapping.rml import load_mapping
    from ..readers.sources import CsvSource

    mappings_dir = Path(mappings_dir or MAPPINGS_DIR)
    source = source or detect_source(export, mappings_dir)
    files = export_files(export)
    notes = []
    for path in mapping_files(mappings_dir / source):
        mapping = load_mapping(path, data_dir=Path(export))
        for tm in mapping.triples_maps:
            for found in files_for(tm, files):
                try:  # the ingest's own check: the columns read (joins included), the required ones refused
                    missing = mapping.missing_columns(tm, CsvSource(found, aliases=tm.source.header_names),
                                                      lenient=True)
                except DataError as exc:
                    notes.append(f"{path.name} ({_local(tm)}) needs the column {exc.field}, which {found.name} "
                                 "does not have: the ingest refuses the file (add okgm:columnAlias if it has "
                                 "another name)")
                    continue
                missing = [c for c in missing if c not in tm.source.keys]  # made from other columns
                if missing:
                    notes.append(f"{path.name} ({_local(tm)}) reads {', '.join(missing)}, which {found.name} does "
                                 "not have: read as empty at ingest (a misspelt name? add okgm:columnAlias)")
    return source, notes


def _all_mapping_files(mappings_dir):
    from pathlib import Path

    from ..ingest.read import mapping_files
    from ..paths import MAPPINGS_DIR

    root = Path(mappings_dir or MAPPINGS_DIR)
    return [path for system in sorted(p for p in root.iterdir() if p.is_dir()) for path in mapping_files(system)]


def _local(tm):
    return str(getattr(tm.iri, "value", tm.iri)).rsplit("#", 1)[-1].rsplit("/", 1)[-1] or tm.name


def _term_problems(tm, defined):
    """Undefined okg: terms and ignored datatypes in one triples map."""
    from ..vocabulary import OKG

    used = [("class", c) for c in tm.classes]
    for pom in tm.poms:
        used += [("property", p.spec) for p in pom.predicates if p.kind == "constant"]
        for obj in pom.objects:
            if getattr(obj, "kind", None) != "constant":
                continue
            if getattr(obj.spec, "value", "").startswith(OKG) and type(obj.spec).__name__ == "NamedNode":
                used.append(("value", obj.spec))
            if obj.datatype is not None or obj.language is not None:
                predicate = ", ".join(_short(p.spec) for p in pom.predicates if p.kind == "constant")
                yield (f"{_local(tm)}: {predicate}: a datatype or language on a constant is ignored (RML "
                       f"keeps the constant as written); write the typed literal itself, as \"1\"^^xsd:decimal")
    for kind, term in used:
        iri = getattr(term, "value", str(term))
        if iri.startswith(OKG) and iri not in defined:
            close = difflib.get_close_matches(iri, defined, n=1)
            hint = f"; did you mean {_short_iri(close[0])}?" if close else "; define it in ontology/ first"
            yield f"{_local(tm)}: the {kind} {_short_iri(iri)} is not defined in the ontology{hint}"


def _short_iri(iri):
    from ..vocabulary import OKG

    return "okg:" + iri[len(OKG):] if iri.startswith(OKG) else f"<{iri}>"


def _short(term):
    return _short_iri(getattr(term, "value", str(term)))


def lint(paths=None):
    """Every problem with the model files: style, SHACL-SHACL, canned queries, mappings and
    canonical form."""
    problems = style_violations()
    problems += shapes_violations()
    problems += query_violations()
    problems += mapping_violations()
    for path in format_files(paths, check=True):
        problems.append(Violation(focus=str(path), path=None, value=None, shape=None,
                                  message="not in canonical Turtle form; run okg fmt"))
    return problems


def shape_notes(shapes=None):
    """One note per data shape the ingest's SPARQL validation path leaves to pyshacl, saying why."""
    from ..validation.shacl_sparql import uncompiled_shapes
    from ..validation.validate import split_shapes

    core, _ = split_shapes(shapes if shapes is not None else load_shapes())
    return [f"shape {shape} is checked by pyshacl, not compiled to SPARQL ({why}): the results are the same, "
            "validation of a big export is slower" for shape, why in uncompiled_shapes(core)]
