"""What every route of the HTTP layer answers besides its own content, in one place for the Flask
routes and the short ``/sparql`` path (:mod:`.endpoint`): the one JSON error shape, the CORS
headers and the request log line."""

import json
import logging
import time

from werkzeug.wrappers import Response

from ..errors import Busy

log = logging.getLogger("opportunity_kg.web")


def json_response(body, status=200, headers=None):
    return Response(json.dumps(body, ensure_ascii=False) + "\n", status=status, headers=headers,
                    mimetype="application/json")


def error_response(exc):
    """An :class:`~opportunity_kg.errors.OkgError` in the JSON error shape, with its status (and
    ``Retry-After`` when the server is busy)."""
    headers = dict(getattr(exc, "headers", None) or {})
    if isinstance(exc, Busy):
        headers["Retry-After"] = "1"
    return json_response(exc.as_dict(), exc.status, headers)


def http_error_response(exc, method, path, max_request_bytes):
    """An HTTP error werkzeug raised (no such page, a method not allowed, a body too large, a
    request it cannot read) in the JSON error shape."""
    code = exc.code or 500
    headers = {}
    if code == 404:
        message = f"no such page: {path}"
    elif code == 405:
        message = f"{method} is not allowed on {path}"
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
    elif code == 413:
        message = f"the request body is over the {max_request_bytes} byte limit (OKG_MAX_REQUEST_BYTES)"
    else:
        message = exc.description or exc.name
    kind = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
        code, exc.name.lower().replace(" ", "_"))
    return json_response({"error": kind, "message": message}, code, headers)


def server_error_response(method, path, exc):
    """A failure nobody foresaw: logged with its traceback, answered in the JSON error shape."""
    log.error("%s %s failed", method, path, exc_info=exc)
    return json_response({"error": "server_error", "message": "the server failed to answer; the log says why"}, 500)


def allowed_origins(setting):
    """The origins the setting ``cors_origins`` (OKG_CORS_ORIGINS, comma-separated) names."""
    return [o.strip() for o in setting.split(",") if o.strip()]


def cors_headers(origin, origins):
    """The CORS headers for a request from ``origin`` when it is one of ``origins`` (:func:`allowed_origins`)."""
    if not origin or not ("*" in origins or origin in origins):
        return []
    return [("Access-Control-Allow-Origin", "*" if "*" in origins else origin),
            ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
            ("Access-Control-Allow-Headers", "Accept, Content-Type, Authorization"),
            ("Vary", "Origin")]


def log_answer(method, path, status, began, query=None, cut=None):
    """The request's log line, once its answer is written: status, duration, and for a query its
    kind, the time to its first answer and where the row limit cut it (``OKG-Rows-Cut``)."""
    if not log.isEnabledFor(logging.INFO):
        return
    detail = f" ({query[0]} query, first answer in {query[1]:.1f} ms)" if query else ""
    if cut:
        detail += f", cut at {int(cut):,} rows (OKG_MAX_ROWS)"
    log.info("%s %s %s in %.1f ms%s", method, path, status, (time.monotonic() - began) * 1000, detail)
