"""Canned, parameterised SPARQL queries from ``queries/*.rq``.

A canned query is a plain SPARQL file whose header comments describe it::

    #+ title: Weighted pipeline by owner
    #+ description: Open opportunities closing in a period, by owner.
    #+ param: period (period, required) Calendar quarter of the close date, e.g. 2026-Q4.

A parameter line is ``#+ param: NAME (TYPE[, required | , default=VALUE]) DESCRIPTION``.
Types: ``string``, ``integer``, ``number``, ``boolean``, ``date``, ``iri``,
``enum=a|b|c`` and ``period`` (``2026``, ``2026-H2``, ``2026-Q4`` or
``2026-11``; it binds ``?NAME_start`` and ``?NAME_end``, a half-open range of
``xsd:date``). Every value is checked against its type and turned into an RDF
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

from .errors import NotFound, QueryError
from .paths import QUERIES_DIR
from .store import run_query

XSD = "http://www.w3.org/2001/XMLSchema#"
TYPES = ("string", "integer", "number", "boolean", "date", "iri", "enum", "period")
_PARAM = re.compile(r"^(\w+)\s*\(([^)]*)\)\s*(.*)$")
_PERIOD = re.compile(r"^(\d{4})(?:-(?:Q([1-4])|H([12])|(0[1-9]|1[0-2])))?$")


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
            match = _PERIOD.match(text)
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
            return [(self.name, _typed(value.isoformat(), "date"))]
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
        return [self.name + "_start", self.name + "_end"] if self.type == "period" else [self.name]


def _typed(text, kind):
    return ox.Literal(text, datatype=ox.NamedNode(XSD + kind))


def period_range(text):
    """The first day of a period and the first day after it."""
    match = _PERIOD.match(text.strip())
    if not match:
        raise ValueError(f"not a period: {text!r}")
    year, quarter, half, month = match.groups()
    year = int(year)
    if quarter:
        start_month, months = (int(quarter) - 1) * 3 + 1, 3
    elif half:
        start_month, months = (int(half) - 1) * 6 + 1, 6
    elif month:
        start_month, months = int(month), 1
    else:
        start_month, months = 1, 12
    end_index = start_month - 1 + months
    return date(year, start_month, 1), date(year + end_index // 12, end_index % 12 + 1, 1)


@dataclass
class CannedQuery:
    name: str
    title: str
    description: str
    params: list
    text: str
    path: Path
    #: the facts (:data:`opportunity_kg.support.FACTS`) it cannot answer without (``#+ needs:``) and
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


def where_group_start(text):
    """The index just after the '{' that opens the outermost WHERE group."""
    return where_group_starts(text, first=True)[0]


def _tokens(text):
    """(index, token) for each '{', '}', and WHERE or UNION keyword of a query, skipping comments,
    strings and IRIs."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            i = text.find("\n", i)
            if i < 0:
                return
            continue
        if c in "\"'":
            quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else c
            i += len(quote)
            while i < n and text[i:i + len(quote)] != quote:
                i += 2 if text[i] == "\\" else 1
            i += len(quote)
            continue
        if c == "<" and re.match(r"<[^\s<>\"{}|^`\\]*>", text[i:]):
            i = text.index(">", i) + 1
            continue
        if c in "{}":
            yield i, c
        else:
            for word in ("WHERE", "UNION"):
                if text[i:i + 5].upper() == word and not re.match(r"\w", text[i - 1] if i else " ") \
                        and not re.match(r"\w", text[i + 5:i + 6] or " "):
                    yield i, word
                    i += 4
        i += 1


def where_group_starts(text, first=False):
    """The indexes just after each '{' that opens a WHERE group (the query's, then its subqueries')
    or a UNION branch: the groups whose patterns do not see bindings from outside them."""
    found, opens, pairs = [], [], {}
    after_where = after_union = False
    last_closed = None
    for i, token in _tokens(text):
        if token == "WHERE":
            after_where = True
        elif token == "UNION":
            after_union = True
            if last_closed is not None:  # the branch before the keyword
                found.append(pairs[last_closed] + 1)
        elif token == "{":
            opens.append(i)
            if after_where or after_union:
                found.append(i + 1)
                if first and after_where:
                    return found
            after_where = after_union = False
        else:
            if opens:
                pairs[i] = opens.pop()
            last_closed = i
            continue
        last_closed = None
    if not found:
        raise QueryError("a canned query needs a WHERE clause to bind its parameters into")
    # a group that holds a subquery holds nothing else (its WHERE group gets the values instead)
    subquery = re.compile(r"(\s|#[^\n]*\n)*SELECT\b", re.I)
    return sorted({at for at in found if not subquery.match(text, at)})


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
