"""Reading SPARQL text: where a query's groups open, so values can be bound into them (canned-query
parameters, and the focus nodes of compiled SHACL rules)."""

import re

from .errors import QueryError


def where_group_start(text):
    """The index just after the '{' that opens the outermost WHERE group."""
    return where_group_starts(text, first=True)[0]


def where_group_end(text):
    """The index of the '}' that closes the outermost WHERE group."""
    depth, inside = 0, False
    for i, token in _tokens(text):
        if token == "WHERE" and not inside:
            inside = True
        elif token == "{" and inside:
            depth += 1
        elif token == "}" and inside:
            depth -= 1
            if depth == 0:
                return i
    raise QueryError("the query's WHERE group is not closed")


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
