"""R2RML's IRI-safe form of a value, which the RML engine puts in IRI templates and the functions
and the scaffold that make the same IRIs use too."""

import re

_IRI_SAFE = re.compile(r"[A-Za-z0-9\-._~\u00A0-\uD7FF\uF900-\uFDCF\uFDF0-\uFFEF\U00010000-\U000EFFFD]")
_ALL_SAFE = re.compile(r"[A-Za-z0-9\-._~]*")


def iri_safe(value):
    """R2RML's IRI-safe form: percent-encode every character that is not iunreserved."""
    if value.isalnum() and value.isascii() or _ALL_SAFE.fullmatch(value):
        return value  # the common case (ids), without a look at each character
    out = []
    for char in value:
        if _IRI_SAFE.match(char):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)
