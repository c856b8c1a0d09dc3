"""``okg scaffold``: a first mapping for a source system the project has never seen, from an export.

It reads each CSV file's header and rows, and guesses:

- what each file holds: opportunities, accounts, users (sellers), stage history or line items
  (by its name and its columns); a file it cannot place is left out, and said so;
- each table's key: an Id column whose values are unique, else a unique name column (records
  named by name, as many exports do);
- references between tables, by their values: a column most of whose values are another
  table's keys (an opportunity's account and owner, an account's parent, a seller's manager);
- dates (and whether the day comes first, which gives ``okgfn:format``), amounts, probabilities,
  yes/no flags;
- the stage column, with a reference file of the stages seen (their order, and which close and
  win, guessed from their names: a file to check).

It writes ``mappings/<system>/<file>.rml.ttl`` per table and ``reference/stages.ttl``, in canonical
Turtle with each guess written down in the file's opening comment, so the output passes
``okg lint`` and loads what it could map without an edit. docs/adding-a-system.md walks through
refining it.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OkgError
from ..mapping.functions import _parse_datetime, to_decimal
from ..store.history import CLOSED_NAME, WON_NAME
from ..ingest.read import export_files
from ..mapping.iri import iri_safe
from ..paths import MAPPINGS_DIR
from ..readers.sources import CsvSource
from .turtle_format import format_turtle

#: rows read of each file to guess its columns (every row is read for keys and stage names)
SAMPLE_ROWS = 500
#: share of a column's values that must be another table's keys for it to be taken as a reference
REFERENCE_SHARE = 0.6
ID_BASE = "https://w3id.org/opportunity-kg/id/"
MAPPING_BASE = "https://w3id.org/opportunity-kg/mapping/"

#: what a table holds, told by words in its file name and in its columns' names
ROLES = {
    "opportunity": (("opportunit", "deal", "pipeline"), ("stage", "amount", "close", "value")),
    "history": (("history", "stagechange"), ()),
    "lineitem": (("lineitem", "line_item", "opportunityproduct", "dealproduct"), ("quantity", "unitprice")),
    "account": (("account", "compan", "customer", "organi", "client"), ("industry", "sector", "website", "employees")),
    "user": (("user", "owner", "team", "agent", "seller", "salesrep", "employee"), ("email", "manager")),
    "product": (("product",), ("price",)),
}
#: the IRI path of each kind of record, and its class
KINDS = {"opportunity": ("opportunity", "Opportunity"), "account": ("account", "Account"),
         "user": ("user", "Seller"), "history": ("stage-change", "StageChange"),
         "lineitem": ("line-item", "LineItem"), "product": ("product", "Product")}
#: the property a reference from one kind of table to another becomes
LINKS = {("opportunity", "account"): "account", ("opportunity", "user"): "owner", ("account", "user"): "owner",
         ("account", "account"): "parentAccount", ("user", "user"): "manager",
         ("history", "opportunity"): "changeOf", ("lineitem", "opportunity"): "lineItemOf",
         ("lineitem", "product"): "product"}
LABEL_WORDS = ("name", "title", "subject", "topic", "fullname")
#: words in a file name that say it links records or holds another kind of them: left out
OTHER_TABLES = ("contact", "relation", "association", "member", "competitor", "share", "feed", "lead", "campaign",
                "case", "task", "territor", "quota", "period")
#: the share of a table's rows that must have a value in its key column: a name, an Id column
KEY_FILLED = 0.9
ID_FILLED = 0.5
#: the share of a column's values that must read as dates (amounts, flags) for it to be mapped as such
VALUES_PASSING = 0.8


@dataclass
class Column:
    name: str
    values: list  # the sample's non-empty values
    filled: int  # rows of the sample with a value
    rows: int

    @property
    def norm(self):
        return re.sub(r"[^a-z0-9]", "", self.name.casefold())

    def all(self, test):
        """Whether nearly all the sample's values pass ``test`` (a stray bad value is the row's
        problem, which the ingest reports, not the column's)."""
        return bool(self.values) and sum(1 for v in self.values if test(v)) >= VALUES_PASSING * len(self.values)


@dataclass
class Table:
    path: Path
    header: list
    columns: dict
    role: str = ""
    key: str = ""  # the column whose value names a record
    keys: set = field(default_factory=set)  # every value of the key column
    label: str = ""
    links: dict = field(default_factory=dict)  # column -> (property, the table it refers to)
    notes: list = field(default_factory=list)

    @property
    def stem(self):
        return self.path.stem


def scaffold(export, system, mappings_dir=MAPPINGS_DIR, force=False):
    """Write a first mapping of ``export`` (a folder of CSV files) as source system ``system`` into
    ``mappings_dir/system``; return (the files written, one line per guess or file left out)."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", system):
        raise OkgError(f"the system name {system!r} must be lower-case letters, digits and dashes (it goes in IRIs)",
                       field="system")
    target = Path(mappings_dir) / system
    if target.exists() and any(target.iterdir()) and not force:
        raise OkgError(f"{target} already holds a mapping; give another --system, or --force to overwrite it")
    tables = [_profile(path) for path in export_files(export)]
    if not tables:
        raise OkgError(f"no CSV files in {export}")
    for table in tables:
        table.role = _role(table)
    placed = [t for t in tables if t.role]
    if not any(t.role == "opportunity" for t in placed):
        raise OkgError(f"no file of {export} looks like opportunities (a name with deal, opportunity or pipeline, "
                       "or columns for stage, amount and close date); nothing written")
    for table in placed:
        _choose_key(table)
    for table in placed:
        _find_links(table, placed)
    target.mkdir(parents=True, exist_ok=True)
    written, lines = [], []
    stages = {}
    for table in placed:
        text, table_stages = _mapping(table, system)
        for value in table_stages:
            stages.setdefault(value, None)
        path = target / f"{table.stem}.rml.ttl"
        path.write_text(text, encoding="utf-8")
        written.append(path)
        lines.append(f"{table.path.name}: {table.role}, key {table.key or '(none)'}; " + "; ".join(table.notes))
    if stages:
        (target / "reference").mkdir(exist_ok=True)
        path = target / "reference" / "stages.ttl"
        path.write_text(_stages(stages, system), encoding="utf-8")
        written.append(path)
        lines.append(f"reference/stages.ttl: {len(stages)} stages seen; check their order, and which close and win")
    lines += [f"{t.path.name}: left out (not opportunities, accounts, users, stage history or line items)"
              for t in tables if not t.role]
    return written, lines


def _profile(path):
    source = CsvSource(path)
    values = {c: [] for c in source.header}
    rows = 0
    for row in source.rows():
        if row.values is None or rows >= SAMPLE_ROWS:
            continue
        rows += 1
        for column, value in row.values.items():
            if value and value.strip() and column in values:
                values[column].append(value.strip())
    columns = {c: Column(c, v, len(v), rows) for c, v in values.items()}
    return Table(path, list(source.header), columns)


def _norm(text):
    return re.sub(r"[^a-z0-9]", "", text.casefold())


def _role(table):
    """What the table holds, by its file name first, then its columns' names; nothing for a table
    that links records (contact roles, relations) or holds records of another kind (contacts)."""
    name = _norm(table.stem)
    if any(word in name for word in OTHER_TABLES):
        return ""
    norms = [c.norm for c in table.columns.values()]
    stage_and_date = any("stage" in n for n in norms) and any("date" in n or n.endswith("at") for n in norms)
    if any(w in name for w in ROLES["history"][0]) and stage_and_date:
        return "history"
    if any(_norm(w) in name for w in ROLES["lineitem"][0]) or ("product" in name and any("quantity" in n for n in norms)
                                                              and any("opportunit" in n or "deal" in n for n in norms)):
        return "lineitem"
    for role in ("opportunity", "account", "user", "product"):
        if any(w in name for w in ROLES[role][0]):
            return role
    words = ROLES["opportunity"][1]
    if sum(any(w in n for n in norms) for w in words) >= 3:
        return "opportunity"
    return ""


def _choose_key(table):
    """The key: an Id-like column with unique values in every row, else a unique name column."""
    cols = list(table.columns.values())
    # unique where filled, and filled in nearly every row (an Id column: in most rows); a row without its
    # key is quarantined, and says so
    unique = [c for c in cols if c.rows and c.filled >= ID_FILLED * c.rows and len(set(c.values)) == len(c.values)]
    entity = {"opportunity": ("opportunit", "deal"), "account": ("account", "compan", "customer"),
              "user": ("user", "agent", "owner", "seller", "employee"), "product": ("product",),
              "history": ("history",), "lineitem": ("lineitem", "item")}[table.role]
    ids = [c for c in unique if c.norm == "id" or (c.norm.endswith("id") and any(e in c.norm for e in entity))
           or c.norm in {e + "id" for e in entity}]
    names = [c for c in unique if c.filled >= KEY_FILLED * c.rows and (_is_label(c, entity)
             or any(c.norm == e for e in entity) or c.norm in ("salesagent", "account", "product"))]
    chosen = (ids or names or [])[:1]
    if chosen:
        table.key = chosen[0].name
        table.notes.append(f"records named by {table.key}" + ("" if ids else " (no Id column: by name)"))
        source = CsvSource(table.path)
        table.keys = {(r.values or {}).get(table.key, "").strip() for r in source.rows()} - {""}
    label = sorted((c for c in cols if _is_label(c, entity) and c.name != table.key),
                   key=lambda c: c.norm not in LABEL_WORDS)  # "Name" before "Account Name"
    table.label = (label[0].name if label else (table.key if table.key and not ids else ""))


def _is_label(column, entity):
    """A column that names a record: Name, Title, Subject, Topic, or the entity's name (Deal Name)."""
    n = column.norm
    if n in LABEL_WORDS or any(n == e + "name" for e in entity):
        return True
    return n.endswith("name") and not any(w in n for w in ("stage", "first", "last", "owner", "user", "by", "type"))


def _find_links(table, tables):
    """References to other tables, by value: a column most of whose values are another table's keys."""
    for column in table.columns.values():
        if column.name == table.key and table.role != "history" or not column.values:
            continue
        best = None
        for other in tables:
            prop = LINKS.get((table.role, other.role))
            if not prop or not other.keys or (other is table and column.name == table.key):
                continue
            share = sum(v in other.keys for v in column.values) / len(column.values)
            if share >= REFERENCE_SHARE and (best is None or share > best[0]):
                best = (share, prop, other)
        if best and best[1] not in {p for p, _ in table.links.values()}:
            table.links[column.name] = (best[1], best[2])
            table.notes.append(f"{column.name} -> okg:{best[1]} ({best[0]:.0%} of its values are "
                               f"{best[2].path.name} {best[2].key})")


def _is_date(value):
    if not re.match(r"^\d", value) or re.fullmatch(r"[\d.,]+", value):
        return False
    try:
        _parse_datetime(value)
        return True
    except ValueError:
        return False


def _date_format(values):
    """``okgfn:format`` for dates written day first (a first part above 12 somewhere), else None."""
    parts = [re.match(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{2}|\d{4})$", v) for v in values]
    if not all(parts) or not any(int(p.group(1)) > 12 for p in parts):
        return None
    sep, year = parts[0].group(2), "yyyy" if len(parts[0].group(4)) == 4 else "yy"
    return f"d{sep}M{sep}{year}"


def _is_amount(value):
    try:
        return to_decimal(value) is not None
    except ValueError:
        return False


BOOLEAN_VALUES = {"true", "false", "1", "0", "yes", "no", "y", "n"}


def _mapping(table, system):
    """The RML of one table, and the stage values it names ({value: closed?} for the stages file)."""
    kind, cls = KINDS[table.role]
    tm = f"<{MAPPING_BASE}{system}/#{table.stem}>"
    poms, stages, guesses = [], {}, []

    def pom(prop, obj):
        poms.append(f"[ rml:predicate {prop} ; rml:objectMap {obj} ]")

    def call(function, column, extra=""):
        return (f"[ rml:functionExecution [ rml:function okgfn:{function} ; rml:input [ rml:parameter okgfn:value ; "
                f"rml:inputValueMap [ rml:reference {_lit(column)} ] ]{extra} ] ]")

    subject_column = table.key or None
    if subject_column:
        pom("okg:sourceId", f"[ rml:reference {_lit(subject_column)} ]")
    if table.label:
        pom("rdfs:label", f"[ rml:reference {_lit(table.label)} ]")
    for column, (prop, other) in table.links.items():
        other_kind = KINDS[other.role][0]
        pom(f"okg:{prop}", f"[ rml:template {_lit(f'{ID_BASE}{system}/{other_kind}/{{{_brace(column)}}}')} ]")
    used = {subject_column, table.label, *table.links}
    for column in table.columns.values():
        if column.name in used or not column.values:
            continue
        n = column.norm
        if "stage" in n or (table.role == "opportunity" and n in ("status", "phase", "dealstage")):
            if table.role in ("opportunity", "history") and len(set(column.values)) <= 40:
                pom("okg:stage", f"[ rml:template {_lit(f'{ID_BASE}{system}/stage/{{{_brace(column.name)}}}')} ]")
                for value in _all_values(table, column.name):
                    stages.setdefault(value, None)
                guesses.append(f"{column.name} -> okg:stage (stages in reference/stages.ttl)")
                used.add(column.name)
                continue
        if column.all(_is_date):
            fmt = _date_format(column.values)
            timed = any(":" in v for v in column.values)
            if table.role == "history":  # when the stage changed: its created (or changed) date, once
                prop = "changedAt" if any(w in n for w in ("creat", "chang", "date")) and not any(
                    "okg:changedAt" in p for p in poms) and "close" not in n else None
            else:
                prop = "closeDate" if "close" in n else "createdAt" if "creat" in n else None
            if prop:
                function = "dateTime" if prop in ("createdAt", "changedAt") else "date"
                extra = (f" , [ rml:parameter okgfn:format ; rml:inputValueMap [ rml:constant {_lit(fmt)} ] ]"
                         if fmt and not timed else "")
                pom(f"okg:{prop}", call(function, column.name, extra))
                guesses.append(f"{column.name} -> okg:{prop}" + (f" (dates written {fmt})" if extra else ""))
                used.add(column.name)
            else:
                guesses.append(f"{column.name}: dates, not mapped (which date is it?)")
            continue
        if "probab" in n and column.all(_is_amount):
            pom("okg:probability", call("decimal", column.name))
        elif table.role in ("opportunity", "lineitem") and any(w in n for w in ("amount", "value", "revenue")) \
                and column.all(_is_amount) and "okg:amount" not in " ".join(poms):
            pom("okg:amount", call("decimal", column.name))
            guesses.append(f"{column.name} -> okg:amount")
        elif table.role == "lineitem" and "quantity" in n and column.all(_is_amount):
            pom("okg:quantity", call("decimal", column.name))
        elif table.role == "lineitem" and "price" in n and column.all(_is_amount):
            pom("okg:unitPrice", call("decimal", column.name))
        elif table.role == "opportunity" and n in ("isclosed", "closed", "iswon", "won") \
                and column.all(lambda v: v.casefold() in BOOLEAN_VALUES):
            pom("okg:isWon" if "won" in n else "okg:isClosed", call("boolean", column.name))
        elif "email" in n and table.role == "user":
            pom("okg:email", f"[ rml:reference {_lit(column.name)} ]")
        elif table.role == "account" and n in ("industry", "sector"):
            pom("okg:industry", f"[ rml:reference {_lit(column.name)} ]")
        else:
            continue
        used.add(column.name)
    unmapped = [c for c in table.header if c not in used]
    table.notes += guesses + ([f"not mapped: {', '.join(unmapped)}"] if unmapped else [])
    subject = (f"[ rml:class okg:{cls} ; rml:template "
               f"{_lit(f'{ID_BASE}{system}/{kind}/{{{_brace(subject_column)}}}')} ]") if subject_column else \
        f"[ rml:class okg:{cls} ; rml:termType rml:BlankNode ]"
    objects = " ,\n    ".join(poms) or '[ rml:predicate rdfs:comment ; rml:objectMap [ rml:constant "" ] ]'
    required = f"okgm:requiredColumn {_lit(subject_column)} ; " if subject_column else ""
    unique = "" if subject_column else "okgm:uniqueSubjects false ; "
    body = (f"@prefix okg: <https://w3id.org/opportunity-kg/ontology#> .\n"
            f"@prefix okgfn: <https://w3id.org/opportunity-kg/function#> .\n"
            f"@prefix okgm: <https://w3id.org/opportunity-kg/mapping#> .\n"
            f"@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
            f"@prefix rml: <http://w3id.org/rml/> .\n\n"
            f"{tm} a rml:TriplesMap ;\n"
            f"  rml:logicalSource [ {required}{unique}rml:referenceFormulation rml:CSV ; rml:source [ a rml:RelativePathSource ; "
            f"rml:null \"\" ; rml:path {_lit(table.path.name)} ; rml:root rml:MappingDirectory ] ] ;\n"
            f"  rml:subjectMap {subject} ;\n"
            f"  rml:predicateObjectMap {objects} .\n")
    header = [f"# Written by okg scaffold from {table.path.name}: {table.role} ({cls}). Each line below is a guess",
              "# to check; see docs/adding-a-system.md.", "#"] + [f"# - {note}" for note in table.notes] + [""]
    return format_turtle("\n".join(header) + "\n" + body, table.path.name), stages


def _all_values(table, column):
    """Every distinct value of a column, in order of first appearance."""
    seen = {}
    for row in CsvSource(table.path).rows():
        value = ((row.values or {}).get(column) or "").strip()
        if value:
            seen.setdefault(value, None)
    return list(seen)


def _stages(stages, system):
    """reference/stages.ttl: each stage seen, open ones first in the order met, closed ones after;
    closed and won guessed from the names."""
    names = list(stages)
    ordered = [s for s in names if not CLOSED_NAME.search(s)] + [s for s in names if CLOSED_NAME.search(s)]
    lines = ["# The stages okg scaffold saw in the export, in a guessed order (open stages as they first",
             "# appear, closed ones last), closed and won guessed from their names: check each, and add",
             "# okg:defaultProbability where the system gives one.", "",
             "@prefix okg: <https://w3id.org/opportunity-kg/ontology#> .",
             "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .",
             "@prefix skos: <http://www.w3.org/2004/02/skos/core#> .", ""]
    for n, name in enumerate(ordered, 1):
        closed = bool(CLOSED_NAME.search(name))
        won = closed and bool(WON_NAME.search(name)) and not re.search(r"lost|dead|cancel", name, re.I)
        lines.append(f"<{ID_BASE}{system}/stage/{iri_safe(name)}> a okg:SalesStage ; rdfs:label {_lit(name)} ; "
                     f"skos:notation {_lit(name)} ; okg:sortOrder {n} ; okg:isClosed {str(closed).lower()} ; "
                     f"okg:isWon {str(won).lower()} .")
    return format_turtle("\n".join(lines) + "\n", "stages.ttl")


def _lit(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _brace(column):
    """A column name as an RML template writes it (braces and backslashes escaped)."""
    return re.sub(r"([{}\\])", r"\\\1", column)
