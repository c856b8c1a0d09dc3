"""Canned, parameterised SPARQL queries from ``queries/*.rq``.

A canned query is a plain SPARQL file whose header comments describe it::

    #+ title: Weighted pipeline by owner
    #+ description: Open opportunities closing in a period, by owner.
    #+ param: period (period, required) Calendar quarter of the close date, e.g. 2026-Q4.

A parameter line is ``#+ param: NAME (TYPE[, required | , default=VALUE]) DESCRIPTION``.
Types: ``string``, ``integer``, ``number``, ``boolean``, ``date``, ``iri``,
``enum=a|b|c`` and ``period`` (``2026``, ``2026-H2``, ``2026-Q4`` or
``2026-11``; it binds ``?NAME_start`` and ``?NAME_end``, a half-open range of
``xsd:date``); a ``date`` also binds ``?NAME_month``, its ``xsd:gYearMonth``. Every value is checked against its type and turned into an RDF
term, then bound through a ``VALUES`` block placed at the start of the
query's ``WHERE`` group and of each subquery's (a subquery does not see the
outer bindings): the user's text never becomes query text.
"""

import difflib
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyoxigraph as ox

from ..errors import NotFound, QueryError
from ..paths import QUERIES_DIR
from ..periods import PERIOD, period_range  # noqa: F401  (period_range: re-exported for callers)
from ..sparql_text import where_group_start, where_group_starts
from ..store import run_query
from ..vocabulary import XSD

TYPES = ("string", "integer", "number", "boolean", "date", "iri", "enum", "period")
_PARAM = re.compile(r"^(\w+)\s*\(([^)]*)\)\s*(.*)$")


@dataclass
class Param:
    name: str
    type: str
    description: str = ""
    required: bool = False
    default: str | None = None
    choices: list = field(default_factory=list)

    def as_dict(self):
        out = {"name": self.name, "type": self.type, "required": self.required, "description": self.description}
        if self.default is not None:
            out["default"] = self.default
        if self.choices:
            out["choices"] = self.choices
        return out

    def bindings(self, raw):
        """(variable name, RDF term) pairs for one raw value; QueryError when it does not fit the type."""
        text = str(raw).strip()  # the Python API may pass 2 or date(2026, 1, 1)

        def bad(expected):
            return QueryError(f"parameter {self.name!r}: {raw!r} is not {expected}", field=self.name, value=raw)

        if self.type == "period":
            match = PERIOD.match(text)
            if not match:
                raise bad("a period (2026, 2026-H2, 2026-Q4 or 2026-11)")
            start, end = period_range(text)
            return [(self.name + "_start", _typed(start.isoformat(), "date")),
                    (self.name + "_end", _typed(end.isoformat(), "date"))]
        if self.type == "date":
            try:
                value = date.fromisoformat(text)
            except ValueError:
                raise bad("a date (YYYY-MM-DD)") from None
            # its month too, for a query that finds what held then by month (okg:stateMonth)
            return [(self.name, _typed(value.isoformat(), "date")),
                    (self.name + "_month", _typed(value.isoformat()[:7], "gYearMonth"))]
        if self.type == "integer":
            if not re.fullmatch(r"[-+]?\d{1,18}", text):
                raise bad("a whole number")
            return [(self.name, _typed(str(int(text)), "integer"))]
        if self.type == "number":
            try:
                value = Decimal(text)
            except InvalidOperation:
                raise bad("a number") from None
            if not value.is_finite():
                raise bad("a finite number")
            return [(self.name, _typed(format(value, "f"), "decimal"))]
        if self.type == "boolean":
            if text.lower() not in ("true", "false", "1", "0"):
                raise bad("true or false")
            return [(self.name, _typed("true" if text.lower() in ("true", "1") else "false", "boolean"))]
        if self.type == "iri":
            if not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", text):
                raise bad("an absolute IRI")
            try:
                return [(self.name, ox.NamedNode(text))]
            except ValueError:
                raise bad("a valid IRI") from None
        if self.type == "enum":
            if text not in self.choices:
                raise bad("one of " + ", ".join(self.choices))
            return [(self.name, ox.Literal(text))]
        return [(self.name, ox.Literal(raw))]

    def variables(self):
        if self.type == "period":
            return [self.name + "_start", self.name + "_end"]
        return [self.name, self.name + "_month"] if self.type == "date" else [self.name]


def _typed(text, kind):
    return ox.Literal(text, datatype=ox.NamedNode(XSD + kind))


@dataclass
class CannedQuery:
    name: str
    title: str
    description: str
    params: list
    text: str
    path: Path
    #: the facts (:data:`opportunity_kg.analytics.support.FACTS`) it cannot answer without (``#+ needs:``) and
    #: those it answers better with (``#+ uses:``)
    needs: tuple = ()
    uses: tuple = ()

    def as_dict(self):
        return {"name": self.name, "title": self.title, "description": self.description,
                "parameters": [p.as_dict() for p in self.params], "needs": list(self.needs), "uses": list(self.uses)}

    def bind(self, args):
        """The query text with its parameters bound from ``args`` (a mapping of name to raw string)."""
        known = {p.name for p in self.params}
        unknown = sorted(set(args) - known - {"format"})
        if unknown:
            raise QueryError(f"unknown parameter(s) {', '.join(unknown)}; {self.name} takes "
                             f"{', '.join(sorted(known)) or 'none'}", field=unknown[0])
        names, values = [], []
        for param in self.params:
            raw = args.get(param.name)
            if raw is None or raw == "":
                raw = param.default
            if raw is None:
                if param.required:
                    raise QueryError(f"parameter {param.name!r} is required ({param.description})",
                                     field=param.name)
                for var in param.variables():
                    names.append(var)
                    values.append("UNDEF")
                continue
            for var, term in param.bindings(raw):
                names.append(var)
                values.append(str(term))
        if not names:
            return self.text
        block = "VALUES (" + " ".join("?" + n for n in names) + ") { (" + " ".join(values) + ") }\n"
        text = self.text
        for at in reversed(where_group_starts(text)):  # subqueries and UNION branches: they do not see outer bindings
            text = text[:at] + "\n  " + block + text[at:]
        return text


def parse_query_file(path):
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    meta, params = {}, []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("#+"):
            continue
        key, _, value = line[2:].strip().partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "param":
            match = _PARAM.match(value)
            if not match:
                raise QueryError(f"bad parameter line {line!r}; write '#+ param: NAME (TYPE) DESCRIPTION'",
                                 file=path, line=number)
            name, spec, description = match.groups()
            parts = [s.strip() for s in spec.split(",")]
            kind, _, choices = parts[0].partition("=")
            if kind not in TYPES:
                raise QueryError(f"parameter {name!r} has unknown type {kind!r}; use one of {', '.join(TYPES)}",
                                 file=path, line=number)
            param = Param(name, kind, description, choices=choices.split("|") if choices else [])
            for part in parts[1:]:
                if part == "required":
                    param.required = True
                elif part.startswith("default="):
                    param.default = part[len("default="):]
            params.append(param)
        else:
            meta[key] = value
    facts = {k: tuple(n.strip() for n in meta.get(k, "").split(",") if n.strip()) for k in ("needs", "uses")}
    query = CannedQuery(path.stem, meta.get("title", path.stem), meta.get("description", ""), params, text, path,
                        facts["needs"], facts["uses"])
    where_group_start(text)  # fail early on a query we cannot bind
    return query


def load_queries(folder=QUERIES_DIR):
    """Every canned query in ``folder`` that can be read, by name (the file name without .rq); one
    broken file leaves the others working (:func:`broken_queries` tells what is wrong with it)."""
    return load_all_queries(folder)[0]


def broken_queries(folder=QUERIES_DIR):
    """The canned query files that cannot be read: name -> the error, naming the file and line."""
    return load_all_queries(folder)[1]


def load_all_queries(folder=QUERIES_DIR):
    queries, broken = {}, {}
    for path in sorted(Path(folder).glob("*.rq")):
        try:
            queries[path.stem] = parse_query_file(path)
        except QueryError as exc:
            if exc.file is None:
                exc.file = path
            broken[path.stem] = exc
    return queries, broken


def get_query(name, folder=QUERIES_DIR):
    """The canned query ``name``; an unknown name is answered with the names, the closest first."""
    queries, broken = load_all_queries(folder)
    if name in broken:
        raise broken[name]
    if name not in queries:
        close = difflib.get_close_matches(name, list(queries), n=3, cutoff=0.6)
        rest = [q for q in sorted(queries) if q not in close]
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise NotFound(f"no canned query named {name!r}; {hint}the queries are: {', '.join(close + rest)}",
                       field="name", value=name)
    return queries[name]


def run_canned(store, name, args, *, folder=QUERIES_DIR, **limits):
    """Run canned query ``name`` with raw parameter values ``args``; return a store Result."""
    query = get_query(name, folder)
    return run_query(store, query.bind(args), **limits)
