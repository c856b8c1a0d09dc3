"""Stage 4, check: validate the loaded snapshot with the SHACL shapes; take out the rows whose facts
break a shape (a line is loaded whole or not at all), then validate again; turn warnings into
row warnings in the file's own words, dropping the one value a warning names."""

import pyoxigraph as ox

from ..store import delete_quads
from ..validation.validate import validate_store
from .report import RowWarning, in_file_words
from .rows import focus_term

#: how often validation is repeated after rows are removed (a removal can break another row)
MAX_VALIDATION_PASSES = 5


def check_rows(run, target, shapes, ontology, progress, keep=None):
    """Validate until no row breaks a shape (at most :data:`MAX_VALIDATION_PASSES` times), adding the
    rows that do to ``run.rejects`` and the warnings of the last pass to ``run.warnings``. ``keep``, a
    function, picks the results that count (a re-ingest's about the records it made anew,
    :meth:`~opportunity_kg.ingest.unchanged.Reuse.keep`)."""
    rows, lookup = run.rows, target.lookup
    take_out = {(r[0], r[1]) for r in run.rejects}
    bad = {}  # (file, line) -> (the row, the reason, the column, the value)
    violations = []
    for _ in range(MAX_VALIDATION_PASSES):
        if take_out:
            progress.phase(f"taking out {len(take_out):,} rejected rows")
            for subject, where in rows.take_out(take_out, target.loaded, lookup).items():
                run.gone.setdefault(subject, where + ("quarantined",))
        progress.phase("validating against the shapes")
        violations = validate_store(*target.checked, shapes, ontology)
        if keep is not None:
            violations = keep(violations)
        errors = [v for v in violations if v.is_violation]
        where = {v.focus: rows.lines_of(v.focus, *lookup) for v in errors}
        mapped = rows.map_lines({key for keys in where.values() for key in keys})
        take_out = set()
        for violation in errors:
            owners = [row for key in where[violation.focus] for row in mapped.get(key, [])
                      if row.subject is not None and row.subject.value == violation.focus]
            if violation.path:
                with_path = [r for r in owners if any(t[1].value == violation.path for t in r.triples)]
                owners = with_path or owners
            for row in owners:
                if (row.file, row.line) not in bad:
                    column = rows.columns[id(row.tm)].get(violation.path, "") if violation.path else ""
                    value = (row.values or {}).get(column, "") if column and "," not in column \
                        else (violation.value or "")
                    bad[(row.file, row.line)] = (row, violation.message, column, value)
                    take_out.add((row.file, row.line))
        # a record part of one left out (a stage change of a quarantined or deleted deal) goes too
        for row, reason, column in rows.orphans(run.gone, lookup):
            if (row.file, row.line) not in bad and (row.file, row.line) not in take_out:
                bad[(row.file, row.line)] = (row, reason, column, (row.values or {}).get(column, ""))
                take_out.add((row.file, row.line))
        if not take_out:
            break
    run.warnings += row_warnings(violations, rows, lookup, target.loaded)
    for row, reason, column, value in bad.values():
        run.rejects.append((row.file, row.line, row.record_id, column, value or "", reason, row.values))


def row_warnings(violations, rows, lookup, loaded):
    """:class:`RowWarning` s for the warnings (severity sh:Warning or sh:Info) of the last pass, in the
    file's own words. A warning about one value of a property shape (a malformed website, say)
    drops that value from the loaded graphs (``loaded``: (store, graph) pairs): the row loads without it."""
    found = [v for v in violations if not v.is_violation]
    where = {v.focus: rows.lines_of(v.focus, *lookup) for v in found}
    mapped = rows.map_lines({keys[0] for keys in where.values() if keys})
    out = []
    for violation in found:
        keys = where[violation.focus]
        row = next((r for r in mapped.get(keys[0], []) if r.subject is not None
                    and r.subject.value == violation.focus), None) if keys else None
        column = rows.columns[id(row.tm)].get(violation.path, "") if row and violation.path else ""
        header = in_file_words(rows.headers.get(row.file, {}), column) if row else ""
        message = violation.message
        if violation.path and header:  # the export's column, not the ontology's property
            message = message.replace(f"its {violation.path.rsplit('#', 1)[-1]} ", f"its {header} ")
        kind = "warning"
        if violation.path and violation.value is not None and _drop_value(loaded, violation):
            kind = "value dropped"
            message += "; the value is left out, the row loads"
        file, line = keys[0] if keys else (violation.focus, 0)
        value = violation.value if violation.value is not None else ""
        if row and column and "," not in column and (row.values or {}).get(column):
            value = row.values[column]  # as the file writes it
        out.append(RowWarning(file, line, row.record_id if row else "", header, value, kind, message))
    return out


def _drop_value(loaded, violation):
    """Take the value a warning names out of the loaded graphs, where the record holds it under the
    warning's property (a property shape's result); whether it did (a rule's result names no such value)."""
    predicate = ox.NamedNode(violation.path)
    found = False
    for store, graph in loaded:
        quads = [q for q in store.quads_for_pattern(focus_term(violation.focus), predicate, None, graph)
                 if q.object.value == violation.value]
        found = found or bool(quads)
        delete_quads(store, quads)
    return found
