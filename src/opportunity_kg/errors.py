"""The one error shape of opportunity-kg.

Every error the library raises on purpose is an :class:`OkgError`. It carries
a message for a person and, where known, the file, line and field that caused
it. The CLI prints it, the web layer turns it into a JSON body with the same
keys (see :meth:`OkgError.as_dict`).
"""


class OkgError(Exception):
    """A problem the user can fix: bad input, a bad mapping, a bad query."""

    #: short machine-readable kind, also used as the JSON ``error`` key
    kind = "error"
    #: HTTP status the web layer answers with
    status = 400

    def __init__(self, message, *, file=None, line=None, field=None, value=None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.value = value

    def where(self):
        """'file, line N, field F' for the parts that are known (the field only with a file)."""
        parts = []
        if self.file:
            parts.append(str(self.file))
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field and parts:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)

    def __str__(self):
        where = self.where()
        return f"{where}: {self.message}" if where else self.message

    def as_dict(self):
        """The JSON error shape: always ``error`` and ``message``, then what is known."""
        body = {"error": self.kind, "message": str(self)}
        for key in ("file", "line", "field", "value"):
            value = getattr(self, key)
            if value is not None:
                body[key] = str(value) if key == "file" else value
        return body


class MappingError(OkgError):
    """The mapping itself is wrong or uses something the engine does not support."""

    kind = "mapping_error"


class UnsupportedError(MappingError):
    """The mapping uses an RML feature this engine does not implement."""

    kind = "unsupported"


class DataError(OkgError):
    """A source file or a value in it cannot be read or mapped."""

    kind = "data_error"


class QueryError(OkgError):
    """A SPARQL query or a canned-query parameter is wrong."""

    kind = "query_error"


class NotFound(OkgError):
    """A named thing (canned query, graph) does not exist."""

    kind = "not_found"
    status = 404


class QueryTimeout(OkgError):
    """A query ran longer than the configured timeout."""

    kind = "timeout"
    status = 503


class Busy(OkgError):
    """Every query slot (or every slot one client may hold) is taken by queries still running."""

    kind = "busy"
    status = 503


class Forbidden(OkgError):
    """The request is not allowed at all (updates when no token is configured)."""

    kind = "forbidden"
    status = 403


class Unauthorized(OkgError):
    """The request needs credentials it did not bring (the update token)."""

    kind = "unauthorized"
    status = 401


class StoreFailed(OkgError):
    """The store (or the process answering from it) failed while answering: not the request's fault."""

    kind = "store_error"
    status = 500
