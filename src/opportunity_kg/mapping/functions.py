"""Functions callable from RML mappings through RML-FNML.

Three families, each keyed by the function's IRI:

- GREL string functions (``http://users.ugent.be/~bjdmeest/function/grel.ttl#``)
  and IDLab functions (``https://w3id.org/imec/idlab/function#``) used by the
  RML conformance cases;
- opportunity-kg's cleansing functions (``https://w3id.org/opportunity-kg/function#``,
  prefix ``okgfn:``) that real CRM exports need: dates and datetimes in the
  formats exports really use, "1"/"" booleans, amounts with currency codes,
  trimming.

A function takes keyword arguments named by its parameters and returns a
string, or None for "no value". It raises ValueError when a value cannot be
cleaned; the engine turns that into a data error naming the field.
"""

import functools
import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from ..vocabulary import OKG, OKGFN, XSD

GREL = "http://users.ugent.be/~bjdmeest/function/grel.ttl#"
IDLAB = "https://w3id.org/imec/idlab/function#"


@dataclass(frozen=True)
class Function:
    """A callable with its parameter IRIs (mapped to Python names) and output IRIs."""

    iri: str
    call: object
    params: dict  # parameter IRI -> keyword name
    outputs: tuple  # output IRIs; the first is the default
    datatypes: dict  # output IRI -> datatype IRI of the literal it gives by default


REGISTRY = {}


def register(iri, params, outputs, datatype=None):
    def wrap(call):
        types = {outputs[0]: XSD + datatype} if datatype else {}
        REGISTRY[iri] = Function(iri, call, dict(params), tuple(outputs), types)
        return call

    return wrap


# --- GREL -------------------------------------------------------------------

@register(GREL + "toUpperCase", {GREL + "valueParam": "value"}, [GREL + "stringOut"])
def grel_upper(value=None):
    return None if value is None else value.upper()


@register(GREL + "toLowerCase", {GREL + "valueParam": "value"}, [GREL + "stringOut"])
def grel_lower(value=None):
    return None if value is None else value.lower()


@register(GREL + "string_trim", {GREL + "valueParam": "value"}, [GREL + "stringOut"])
def grel_trim(value=None):
    return None if value is None else value.strip()


@register(GREL + "string_replace",
          {GREL + "valueParam": "value", GREL + "param_find": "find", GREL + "param_replace": "replace"},
          [GREL + "stringOut"])
def grel_replace(value=None, find="", replace=""):
    return None if value is None else value.replace(find, replace)


@register(GREL + "string_substring",
          {GREL + "valueParam": "value", GREL + "p_int_i_from": "start", GREL + "p_int_i_opt_to": "end"},
          [GREL + "stringOut"])
def grel_substring(value=None, start="0", end=None):
    if value is None:
        return None
    start = int(start)
    end = len(value) if end is None else int(end)
    if start < 0 or start > len(value) or end < start:
        return None  # GREL (Java) substring fails outside the string: no value
    return value[start:min(end, len(value))]


@register(GREL + "string_length", {GREL + "valueParam": "value"}, [GREL + "output_number", GREL + "stringOut"], "integer")
def grel_length(value=None):
    return None if value is None else str(len(value))


def _escape_javascript(value):
    return value.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"').replace("\n", "\\n")


_ESCAPES = {
    "html": lambda v: html.escape(v, quote=False),
    "xml": lambda v: html.escape(v, quote=True).replace("&#x27;", "&apos;"),
    "url": lambda v: quote(v, safe=""),
    "csv": lambda v: '"' + v.replace('"', '""') + '"' if re.search(r'[",\n\r]', v) else v,
    "javascript": _escape_javascript,
}


@register(GREL + "escape", {GREL + "valueParam": "value", GREL + "modeParam": "mode"}, [GREL + "stringOut"])
def grel_escape(value=None, mode="html"):
    if value is None:
        return None
    if mode not in _ESCAPES:
        raise ValueError(f"unknown escape mode {mode!r}; use one of {sorted(_ESCAPES)}")
    return _ESCAPES[mode](value)


# --- IDLab ------------------------------------------------------------------

@register(IDLAB + "toUpperCaseURL", {IDLAB + "str": "value"}, [IDLAB + "_stringOut"])
def idlab_upper_url(value=None):
    if value is None:
        return None
    upper = value.upper()
    return upper if upper.startswith(("HTTP://", "HTTPS://")) else "http://" + upper


@register(IDLAB + "equal", {GREL + "valueParam": "left", GREL + "valueParam2": "right"}, [IDLAB + "_boolOut"])
def idlab_equal(left=None, right=None):
    return "true" if left == right else "false"


@register(IDLAB + "alwaysReturnsABC", {}, [IDLAB + "_stringOut"])
def idlab_abc():
    return "ABC"


# --- opportunity-kg cleansing -------------------------------------------------

OUT = OKGFN + "output"
VALUE = {OKGFN + "value": "value"}

_TRUE = {"1", "true", "t", "yes", "y", "x"}
_FALSE = {"0", "false", "f", "no", "n", ""}


@register(OKGFN + "trim", VALUE, [OUT])
def trim(value=None):
    """Strip spaces; an empty result is no value."""
    if value is None:
        return None
    return value.strip() or None


@register(OKGFN + "boolean", VALUE, [OUT], "boolean")
def boolean(value=None):
    """"1"/"" (Salesforce), true/false, yes/no, Y/N -> "true"/"false". Empty text is false; no value
    (a column the export lacks, or a null) gives no value, so the fact can come from elsewhere (a
    deal's stage says whether it is closed)."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return "true"
    if text in _FALSE:
        return "false"
    raise ValueError(f"not a boolean: {value!r} (expected 1/0, true/false, yes/no or empty)")


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%d.%m.%Y", "%Y/%m/%d")
_DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
    "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%y %H:%M", "%m/%d/%y %I:%M %p",
)
#: day zero of Excel's 1900 date system (with its leap-year bug folded in)
EXCEL_EPOCH = datetime(1899, 12, 30)


_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}")


@functools.lru_cache(maxsize=1 << 16)
def _parse_datetime(text):
    text = text.strip()
    if _ISO_START.match(text):
        try:
            return datetime.fromisoformat(text)  # ISO 8601 forms, +0000 and Z included: the common case, fast
        except ValueError:
            pass
    if text.endswith("Z"):
        text = text[:-1] + "+0000"
    for fmt in _DATETIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    if re.fullmatch(r"\d{4,5}(\.\d+)?", text):  # an Excel serial date re-saved as a number
        return EXCEL_EPOCH + timedelta(days=float(text))
    raise ValueError(f"not a date or datetime: {text!r}")


#: the parameters of okgfn:date and okgfn:dateTime: the value, and optionally the one format it is written in
DATE_PARAMS = {OKGFN + "value": "value", OKGFN + "format": "format"}
#: the date and time pattern letters okgfn:format takes (as in Excel, Java and the Unicode patterns),
#: longest first, and the strptime directive each stands for
_PATTERN_LETTERS = [("yyyy", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("M", "%m"),
                    ("dd", "%d"), ("d", "%d"), ("HH", "%H"), ("H", "%H"), ("hh", "%I"), ("h", "%I"),
                    ("mm", "%M"), ("m", "%M"), ("ss", "%S"), ("s", "%S"), ("SSS", "%f"), ("a", "%p"),
                    ("XXX", "%z"), ("Z", "%z")]


@functools.lru_cache(maxsize=64)
def strptime_format(pattern):
    """A date pattern as a data architect writes it (``dd/MM/yyyy``, ``dd.MM.yyyy HH:mm``, ``d MMM yyyy``;
    text in single quotes is literal) as a :func:`datetime.strptime` format; a pattern with ``%`` in it
    is taken as one already. Unknown letters are an error."""
    if "%" in pattern:
        return pattern
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.index("'", i + 1) if "'" in pattern[i + 1:] else len(pattern)
            out.append(pattern[i + 1:end])
            i = end + 1
            continue
        if char.isalpha():
            for letters, directive in _PATTERN_LETTERS:
                if pattern.startswith(letters, i):
                    out.append(directive)
                    i += len(letters)
                    break
            else:
                raise ValueError(f"the date format {pattern!r} has a letter {char!r} that is not a date or time part "
                                 "(yyyy, yy, MMM, MM, M, dd, d, HH, hh, mm, ss, SSS, a, Z); quote literal text: 'T'")
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _parse_with(value, pattern):
    """``value`` read in the one format ``pattern`` (see :func:`strptime_format`), else the usual forms."""
    if not pattern:
        return _parse_datetime(value)
    directives = strptime_format(pattern)  # a pattern that is not one says so, for every row
    try:
        return datetime.strptime(value.strip(), directives)
    except ValueError:
        raise ValueError(f"not a date in the format {pattern}: {value!r}") from None


@register(OKGFN + "date", DATE_PARAMS, [OUT], "date")
def to_date(value=None, format=None):
    """ISO, US M/D/YYYY or M/D/YY, D.M.YYYY, Excel serial, or a datetime -> xsd:date; with
    ``format`` (``dd/MM/yyyy``), only that format."""
    if value is None or not value.strip():
        return None
    return _parse_with(value, format).date().isoformat()


@register(OKGFN + "dateTime", DATE_PARAMS, [OUT], "dateTime")
def to_datetime(value=None, format=None):
    """ISO with or without offset (+0000 or +00:00 or Z), US forms, Excel serial -> xsd:dateTime in UTC;
    with ``format`` (``dd.MM.yyyy HH:mm``), only that format."""
    if value is None or not value.strip():
        return None
    moment = _parse_with(value, format)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        return moment.isoformat(timespec="seconds") + "Z"
    return moment.isoformat(timespec="seconds")


_AMOUNT = re.compile(r"^(?P<pre>[A-Z]{3}|[$€£¥])?\s*(?P<num>[-+]?[\d.,' ]*\d)\s*(?P<post>[A-Z]{3}|[$€£¥])?$")


def _split_amount(value):
    text = value.strip().replace("\u00a0", " ")
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1].strip()
    match = _AMOUNT.match(text)
    if not match:
        raise ValueError(f"not an amount: {value!r}")
    number = match["num"].replace(" ", "").replace("'", "")
    if "," in number and "." in number:
        # the later separator is the decimal mark
        if number.rfind(",") > number.rfind("."):
            number = number.replace(".", "").replace(",", ".")
        else:
            number = number.replace(",", "")
    elif "," in number:
        head, _, tail = number.rpartition(",")
        number = number.replace(",", "") if len(tail) == 3 and head else number.replace(",", ".")
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None
    if negative:
        amount = -amount
    currency = match["pre"] or match["post"]
    return amount, currency


@register(OKGFN + "decimal", VALUE, [OUT], "decimal")
def to_decimal(value=None):
    """"1,234.50", "1.234,50", "USD 1200", "(50)" -> an xsd:decimal lexical form."""
    if value is None or not value.strip():
        return None
    amount, _ = _split_amount(value)
    return _decimal_text(amount)


@register(OKGFN + "currency", {OKGFN + "value": "value", OKGFN + "default": "default"}, [OUT])
def currency(value=None, default=None):
    """The ISO 4217 code written with an amount ("USD 1200"), else the default column's value."""
    if value and value.strip():
        _, code = _split_amount(value)
        if code and len(code) == 3:
            return code
    return default.strip().upper() if default and default.strip() else None


def _decimal_text(amount):
    """The canonical xsd:decimal form, as stores keep it: no exponent, no trailing zeros."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text


@register(OKGFN + "concat", {OKGFN + "value": "value", OKGFN + "value2": "value2"}, [OUT])
def concat(value=None, value2=None):
    if value is None or value2 is None:
        return None
    return value + value2


@register(OKGFN + "integer", VALUE, [OUT], "integer")
def to_integer(value=None):
    """"1,200", "1200.0", "1 200" -> an xsd:integer lexical form (a fraction is an error)."""
    if value is None or not value.strip():
        return None
    amount, _ = _split_amount(value)
    if amount != amount.to_integral_value():
        raise ValueError(f"not a whole number: {value!r}")
    return str(int(amount))


def _prefixed(value, prefix):
    from .iri import iri_safe

    return prefix + iri_safe(value) if prefix else value


SPLIT_PARAMS = {OKGFN + "value": "value", OKGFN + "separator": "separator", OKGFN + "prefix": "prefix"}


@register(OKGFN + "split", SPLIT_PARAMS, [OUT])
def split(value=None, separator=";", prefix=None):
    """"a; b;c" -> the values a, b and c (one term each); empty parts are dropped.
    With ``prefix`` each part becomes an IRI: the prefix and the part, IRI-safe."""
    if value is None:
        return None
    parts = [part.strip() for part in value.split(separator or ";")]
    return [_prefixed(part, prefix) for part in parts if part] or None


@register(OKGFN + "first", SPLIT_PARAMS, [OUT])
def first(value=None, separator=";", prefix=None):
    """The first of several values in one cell ("a;b" -> a); with ``prefix``, as an IRI."""
    parts = split(value, separator, prefix)
    return parts[0] if parts else None


_SALESFORCE_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


@register(OKGFN + "salesforceId", {OKGFN + "value": "value", OKGFN + "prefix": "prefix"}, [OUT])
def salesforce_id(value=None, prefix=None):
    """A Salesforce record Id in its 18-character form, which exports and the API use, also when it
    was written in the 15-character form of the user interface and reports ("001Ec00000FzlUd" ->
    "001Ec00000FzlUdIAJ"); with ``prefix``, as an IRI. Any other value is kept as it is (a reference
    to another system is not a reason to reject the row; it just names no record)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if re.fullmatch(r"[A-Za-z0-9]{15}", text):
        text += "".join(_SALESFORCE_SUFFIX[sum(1 << i for i, c in enumerate(text[k:k + 5]) if c.isupper())]
                        for k in (0, 5, 10))
    return _prefixed(text, prefix)


@register(OKGFN + "join", {OKGFN + "value": "value", OKGFN + "value2": "value2", OKGFN + "separator": "separator"},
          [OUT])
def join(value=None, value2=None, separator=" "):
    """Two values joined by a separator (default a space), skipping an empty one: first and last names."""
    parts = [v.strip() for v in (value, value2) if v and v.strip()]
    return (separator if separator is not None else " ").join(parts) or None


@register(OKGFN + "default", {OKGFN + "value": "value", OKGFN + "default": "default"}, [OUT])
def default(value=None, default=None):
    """The value, or ``default`` when it is empty: a name made of first and last names where an
    export has no Name column, "Open" where a status is blank. Nest another function as either input."""
    if value is not None and value.strip():
        return value
    return default if default is not None and default.strip() else None


@register(OKGFN + "when", {OKGFN + "value": "value", OKGFN + "if": "condition"}, [OUT])
def when(value=None, condition=None):
    """The value, only where ``if`` is not empty: a record made from another table's rows (an
    account from its deals' customer names) only where the name is there."""
    return value if condition is not None and condition.strip() else None


#: lookup tables read so far: path -> (scoped rows, unscoped rows)
_TABLES = {}


def _table(path):
    import csv

    if path not in _TABLES:
        scoped, plain = {}, {}  # key -> the whole row
        try:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or "key" not in reader.fieldnames:
                    raise ValueError(f"lookup table {path} needs a key column (and value columns, and "
                                     "optionally scope)")
                for row in reader:
                    key = (row["key"] or "").strip().casefold()
                    scope = (row.get("scope") or "").strip().casefold()
                    (scoped.setdefault((scope, key), row) if scope else plain.setdefault(key, row))
        except OSError as exc:
            raise ValueError(f"cannot read lookup table {path}: {exc.strerror}") from None
        _TABLES[path] = (scoped, plain)
    return _TABLES[path]


@register(OKGFN + "lookup", {OKGFN + "value": "value", OKGFN + "table": "table", OKGFN + "scope": "scope",
                             OKGFN + "column": "column", OKGFN + "prefix": "prefix",
                             OKGFN + "passThrough": "pass_through"}, [OUT])
def lookup(value=None, table=None, scope=None, column="value", prefix=None, pass_through=None):
    """A column of the lookup table's row whose ``key`` is the value (case and outer spaces ignored).

    The table is a CSV file (in the export's folder, else beside the mapping)
    with a ``key`` column, value columns (``value`` unless ``column`` names
    another) and optionally ``scope``: a row with a scope (a pipeline, say)
    matches only when the ``scope`` input equals it; rows without one match
    any scope. An empty cell gives no value; a cell starting ``error:`` rejects
    the row with the rest as the reason. With ``prefix`` the result becomes an
    IRI. A value not in the table is an error, unless it matches the regular
    expression ``passThrough``, when it is kept as it is (ids, for example).
    """
    if value is None or not value.strip():
        return None
    if not table:
        raise ValueError("okgfn:lookup needs a table")
    scoped, plain = _table(table)
    key = value.strip().casefold()
    row = scoped.get((scope.strip().casefold(), key)) if scope else None
    row = row or plain.get(key)
    if row is not None:
        if column not in row:
            raise ValueError(f"lookup table {table.rsplit('/', 1)[-1]} has no column {column!r}")
        result = (row[column] or "").strip()
        if result.startswith("error:"):
            raise ValueError(result[len("error:"):].strip())
        return _prefixed(result, prefix) if result else None
    if pass_through and re.fullmatch(pass_through, value.strip()):
        return _prefixed(value.strip(), prefix)
    where = f" for {scope.strip()!r}" if scope and scope.strip() else ""
    raise ValueError(f"{value.strip()!r}{where} is not in the lookup table {table.rsplit('/', 1)[-1]}; "
                     "add a row for it")


@register(OKGFN + "webDomain", VALUE, [OUT])
def web_domain(value=None):
    """A website as CRMs hold it ("https://www.Example.com/about", "example.com") -> "example.com"."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = re.split(r"[/?#:]", text, maxsplit=1)[0]
    text = text[4:] if text.startswith("www.") else text
    if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", text):
        raise ValueError(f"not a website or domain: {value!r}")
    return text


@register(OKGFN + "digits", VALUE, [OUT])
def digits(value=None):
    """The digits of an identifier written with separators ("12-345-6789" -> "123456789"); no value
    when it has none (a shape checks the length, so a malformed one is a warning, not a rejected row)."""
    found = re.sub(r"\D", "", value or "")
    return found or None


_FORECAST = {"pipeline": "Pipeline", "bestcase": "BestCase", "commit": "Commit", "committed": "Commit",
             "closed": "Closed", "closedwon": "Closed", "won": "Closed", "omitted": "Omitted", "omit": "Omitted",
             "notforecasted": "Omitted", "lost": "Omitted", "closedlost": "Omitted", "forecast": "Commit"}


@register(OKGFN + "forecastCategory", VALUE, [OUT])
@functools.lru_cache(maxsize=1024)
def forecast_category(value=None):
    """A forecast category name or API name ("Best Case", "BestCase"; HubSpot's "Closed won" and
    "Not forecasted", Dynamics' "Committed", "Won", "Lost") -> its okg: concept IRI."""
    if value is None or not value.strip():
        return None
    key = re.sub(r"[\s_-]", "", value).lower()
    if key not in _FORECAST:
        raise ValueError(f"unknown forecast category {value!r} (expected Pipeline, Best Case, Commit, "
                         "Closed or Omitted)")
    return OKG + _FORECAST[key]
