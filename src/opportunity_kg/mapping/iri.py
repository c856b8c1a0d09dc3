"""R2RML's IRI-safe form of a value, which the RML engine puts in IRI templates and the functions
and the scaffold that make the same IRIs use too."""

import functools
import re

#: a character that is not iunreserved (RFC 3987): percent-encoded in an IRI-safe value
_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~\u00A0-\uD7FF\uF900-\uFDCF\uFDF0-\uFFEF\U00010000-\U000EFFFD]+")
#: how many values' IRI-safe forms are kept (ids, owners and accounts repeat over many rows)
SAFE_CACHE_SIZE = 1 << 16


@functools.lru_cache(maxsize=SAFE_CACHE_SIZE)
def iri_safe(value):
    """R2RML's IRI-safe form: percent-encode every character that is not iunreserved."""
    if value.isalnum() and value.isascii():
        return value  # the common case (ids), without a look at each character
    return _UNSAFE.sub(_percent_encoded, value)


def _percent_encoded(match):
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))
