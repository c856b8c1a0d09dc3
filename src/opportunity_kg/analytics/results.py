"""Streaming serialisation of SPARQL results, with a row limit.

SELECT results as SPARQL JSON, XML, CSV and TSV; ASK as JSON, XML, CSV and
TSV; CONSTRUCT/DESCRIBE results as N-Triples or Turtle. Rows are written as
they come, so a large result never sits whole in memory, and the writers stop
at ``max_rows``.
"""

import json
import re
from xml.sax.saxutils import escape

import pyoxigraph as ox
from ..vocabulary import NUMERIC_DATATYPES, XSD

SELECT_FORMATS = {
    "json": "application/sparql-results+json",
    "xml": "application/sparql-results+xml",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
}
GRAPH_FORMATS = {
    "ntriples": "application/n-triples",
    "turtle": "text/turtle",
    "rdfxml": "application/rdf+xml",
    "jsonld": "application/ld+json",
}
#: formats written by Oxigraph's serializer as a whole document (N-Triples and Turtle stream line by line)
_WHOLE = {"rdfxml": ox.RdfFormat.RDF_XML, "jsonld": ox.RdfFormat.JSON_LD}


def _csv_value(term, guard=False):
    if term is None:
        return ""
    text = term.value
    if guard and text[:1] in FORMULA_STARTS and not _is_number(term):
        text = "'" + text
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


#: literals written in the SPARQL TSV short form (Turtle's) when their text is in that form: 1, 1.5, 1.0e3, true
_SHORT = {XSD + "integer": re.compile(r"[+-]?\d+"), XSD + "decimal": re.compile(r"[+-]?\d*\.\d+"),
          XSD + "double": re.compile(r"[+-]?(\d+\.\d*|\.?\d+)[eE][+-]?\d+"),
          XSD + "boolean": re.compile(r"true|false")}


def _tsv_value(term):
    """A term as SPARQL 1.1's TSV results write it: as in Turtle, numbers and booleans in their short
    form (``1``, not ``"1"^^xsd:integer``), so a spreadsheet or pandas reads numbers."""
    if term is None:
        return ""
    if isinstance(term, ox.Literal) and not term.language:
        pattern = _SHORT.get(term.datatype.value)
        if pattern and pattern.fullmatch(term.value):
            return term.value
    return str(term)


def _json_term(term):
    if isinstance(term, ox.NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, ox.BlankNode):
        return {"type": "bnode", "value": term.value}
    if isinstance(term, ox.Triple):
        return {"type": "triple", "value": {"subject": _json_term(term.subject),
                                            "predicate": _json_term(term.predicate),
                                            "object": _json_term(term.object)}}
    out = {"type": "literal", "value": term.value}
    if term.language:
        out["xml:lang"] = term.language
    elif term.datatype.value != "http://www.w3.org/2001/XMLSchema#string":
        out["datatype"] = term.datatype.value
    return out


def _xml_term(term):
    if isinstance(term, ox.NamedNode):
        return f"<uri>{escape(term.value)}</uri>"
    if isinstance(term, ox.BlankNode):
        return f"<bnode>{escape(term.value)}</bnode>"
    if term.language:
        return f'<literal xml:lang="{escape(term.language)}">{escape(term.value)}</literal>'
    if term.datatype.value != "http://www.w3.org/2001/XMLSchema#string":
        return f'<literal datatype="{escape(term.datatype.value)}">{escape(term.value)}</literal>'
    return f"<literal>{escape(term.value)}</literal>"


#: what a spreadsheet runs as a formula when a cell starts with it (the CSV injection OWASP describes)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(term):
    datatype = getattr(term, "datatype", None)
    return datatype is not None and datatype.value in NUMERIC_DATATYPES  # "-5" stays a number


def guard_cell(value):
    """A plain value (of :func:`write_table`) safe in a spreadsheet: text a spreadsheet would run as a
    formula gets a leading ``'``; numbers and everything else are left as they are."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        try:
            float(value)
            return value
        except ValueError:
            return "'" + value
    return value


def write_solutions(variables, rows, fmt, max_rows, guard=False):
    """Yield text chunks of a SELECT result in ``fmt``; ``rows`` yields tuples of terms. With ``guard``
    (CSV for spreadsheets, the setting ``csv_formula_guard``) text cells that would run as a
    formula are neutralised (:data:`FORMULA_STARTS`)."""
    names = [v.value for v in variables]
    count = 0
    if fmt == "csv":
        yield ",".join(names) + "\r\n"
        for row in rows:
            if count >= max_rows:
                break
            count += 1
            yield ",".join(_csv_value(t, guard) for t in row) + "\r\n"
    elif fmt == "tsv":
        yield "\t".join("?" + n for n in names) + "\n"
        for row in rows:
            if count >= max_rows:
                break
            count += 1
            yield "\t".join(_tsv_value(t) for t in row) + "\n"
    elif fmt == "json":
        yield '{"head":{"vars":' + json.dumps(names) + '},"results":{"bindings":['
        for row in rows:
            if count >= max_rows:
                break
            binding = {n: _json_term(t) for n, t in zip(names, row) if t is not None}
            yield ("," if count else "") + json.dumps(binding, ensure_ascii=False)
            count += 1
        yield "]}}\n"
    elif fmt == "xml":
        yield '<?xml version="1.0"?>\n<sparql xmlns="http://www.w3.org/2005/sparql-results#"><head>'
        yield "".join(f'<variable name="{escape(n)}"/>' for n in names) + "</head><results>\n"
        for row in rows:
            if count >= max_rows:
                break
            count += 1
            cells = "".join(f'<binding name="{escape(n)}">{_xml_term(t)}</binding>'
                            for n, t in zip(names, row) if t is not None)
            yield f"<result>{cells}</result>\n"
        yield "</results></sparql>\n"
    else:
        raise ValueError(f"unknown results format {fmt!r}")


def write_boolean(value, fmt):
    if fmt == "json":
        return json.dumps({"head": {}, "boolean": bool(value)}) + "\n"
    if fmt == "xml":
        return ('<?xml version="1.0"?>\n<sparql xmlns="http://www.w3.org/2005/sparql-results#"><head/>'
                f"<boolean>{'true' if value else 'false'}</boolean></sparql>\n")
    if fmt == "csv":
        return "_askResult\r\n" + ("true" if value else "false") + "\r\n"
    return "?_askResult\n" + ("true" if value else "false") + "\n"


def write_triples(triples, fmt, max_rows):
    """Yield the triples as N-Triples lines (which Turtle readers accept too), or as one RDF/XML or
    JSON-LD document."""
    if fmt in _WHOLE:
        kept = [t for _, t in zip(range(max_rows), triples)]
        yield ox.serialize(kept, format=_WHOLE[fmt]).decode("utf-8")
        return
    for count, triple in enumerate(triples):
        if count >= max_rows:
            break
        yield f"{triple.subject} {triple.predicate} {triple.object} .\n"


def write_table(rows, fmt, guard=False):
    """Plain records (a list of dicts with the same keys) as ``csv``, ``json`` or an aligned text ``table``;
    ``guard``: CSV cells neutralised as :func:`guard_cell` says."""
    import csv
    import io
    import json

    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    columns = list(rows[0]) if rows else []
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({k: guard_cell(v) for k, v in row.items()} if guard else row for row in rows)
        return out.getvalue()
    cells = [[f"{v:,.2f}" if isinstance(v, float) else "" if v is None else str(v) for v in row.values()]
             for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths)))]
    for row in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
    return "\n".join(lines) + "\n"
