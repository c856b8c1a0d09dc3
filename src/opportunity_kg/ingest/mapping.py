"""Stage 2, map: every row of every planned file through its triples map, into the load target.

A row is loaded, rejected (unreadable, unmappable, no Id, a duplicate Id, no facts at all) or
counted as deleted (the export marks it so); the system's reference files are loaded beside."""

from collections import defaultdict

import pyoxigraph as ox

from ..errors import MappingError
from ..mapping.rml import natural_key
from .report import FileCounts, RowWarning, in_file_words
from .rows import id_column as record_id_column
from .unchanged import Miss, row_key, subject_of

#: the column that marks a row deleted (Salesforce's IsDeleted, in any case) and the values that mean yes
DELETED_COLUMNS = ("IsDeleted",)
TRUE_VALUES = ("1", "true", "yes", "y")
#: how many rows are read between two progress reports (and checks of the in-memory store's size)
PROGRESS_ROWS = 2000


def map_export(run, target, progress):
    """Map every planned file's rows into ``target`` (a :class:`~opportunity_kg.ingest.load.Target`),
    recording in ``run`` what was read, rejected, deleted and warned about."""
    seen = {}  # hash of (triples map, subject) -> file number << 32 | line of its first row (unique-subject maps)
    gave = defaultdict(set)  # file -> lines that gave at least one fact
    silent = {}  # (file, line) -> (record id, values) of rows some triples map made nothing of
    absent = {}  # file -> the columns its mappings read that it lacks (one note per file, however many maps)
    named_by = {}  # file -> {column it lacks: (the columns whose values name the records instead, own id?)}
    footers = {}  # file -> the lines of its report footer
    total = 0
    reuse, keys = run.reuse, run.row_keys
    maps_of = defaultdict(list)  # file -> its triples maps, in plan order
    for _, tm in run.plan.planned:
        maps_of[tm.source.path.name].append(id(tm))
    for mapping, tm in run.plan.planned:
        name = tm.source.path.name
        run.counts.setdefault(name, FileCounts())
        index, width = maps_of[name].index(id(tm)), len(maps_of[name])
        source_file = tm.source.open() if reuse is None else reuse.files[name].sources[index]
        if not source_file.header:
            run.lines_read.setdefault(name, set())
            run.file_notes.append(f"{name}: the file is empty (not even a header); nothing read")
            continue
        missing = mapping.missing_columns(tm, source_file, lenient=True)
        keyed = set(missing) & tm.source.keys.keys()  # made from other columns: named by them
        for column in sorted(keyed):
            by = ", ".join(source_file.renamed.get(c, c) for c in tm.source.keys[column])
            own = column == (tm.source.id_column or record_id_column(tm))
            named_by.setdefault(name, {}).setdefault(column, (by, own))
        if missing:
            absent.setdefault(name, set()).update(set(missing) - keyed)
        run.rows.add_map(mapping, tm, missing)
        run.rows.headers[name] = dict(source_file.renamed)
        id_column = run.rows.id_columns[id(tm)]
        named_by_id = id_column in tm.subject.references
        deleted_column = _deleted_column(source_file.header)
        file_number = list(run.counts).index(name)
        rows = ((row, None, row.line, None) for row in source_file.rows()) if reuse is None \
            else reuse.rows_of(tm, source_file)
        for row, unchanged, line, mapped in rows:
            total += 1
            run.lines_read[name].add(line)
            if not total % PROGRESS_ROWS:
                progress.rows(name, row.number if row is not None else line, total)
                target.spill(progress)
            if row is None:  # read again unchanged: its facts are in the current graph (ingest.unchanged)
                if unchanged:
                    _reused(reuse, seen, tm, name, line, unchanged, file_number)
                    gave[name].add(line)
                continue
            if keys is not None and row.values is not None and (name, line) not in keys:
                keys[(name, line)] = row_key(name, list(row.values.values()))
            mapped = mapped or mapping.map_row(tm, source_file, row, missing)
            if deleted_column and row.values and _is_true(row.values.get(deleted_column)):
                run.deleted[name].add(row.line)  # kept out of the current data, counted on its own
                if mapped.subject is not None:
                    run.gone[mapped.subject] = (name, row.line, "deleted")
                continue
            record_id = (mapped.values or {}).get(id_column, "") or ""
            if not record_id and id_column in keyed and mapped.values is not None:
                record_id = natural_key(mapped.values, tm.source.keys[id_column]) or ""
            if mapped.error:
                run.rejects.append((name, mapped.line, record_id, mapped.field or "", mapped.value or "",
                                    mapped.error, mapped.values))
                subject = subject_of(mapping, tm, mapped.values)
                if subject is not None:
                    run.gone.setdefault(subject, (name, mapped.line, "quarantined"))
                continue
            if named_by_id and not record_id.strip():
                header = source_file.renamed.get(id_column, id_column)
                run.rejects.append((name, mapped.line, "", id_column, "",
                                    f"the row has no {header}, so it names no record", mapped.values))
                continue
            for column, value, reason in mapped.dropped:
                header = in_file_words(source_file.renamed, column)
                run.warnings.append(RowWarning(name, mapped.line, record_id, header, value, "value dropped",
                                               f"{reason}; the value is left out, the row loads"))
            if mapped.subject is not None and mapped.quads:
                gave[name].add(mapped.line)
            elif mapped.values is not None:
                silent.setdefault((name, mapped.line), (record_id, mapped.values))
            if tm.source.unique_subjects and mapped.subject is not None:
                key = hash((tm.name, mapped.subject.value))
                first = seen.get(key)
                if first is not None:
                    first_file, first_line = list(run.counts)[first >> 32], first & 0xFFFFFFFF
                    where = f"line {first_line}" + (f" of {first_file}" if first_file != name else "")
                    run.rejects.append((name, mapped.line, record_id, id_column, record_id,
                                        f"duplicate record: the same {id_column} is on {where}", mapped.values))
                    continue
                seen[key] = file_number << 32 | mapped.line
            target.add(run.rows.triples(mapped))
            if keys is not None and mapped.subject is not None:
                run.row_subjects.setdefault((name, line), [""] * width)[index] = mapped.subject.value
        footer = source_file.footer if reuse is None else reuse.files[name].footer
        if footer:
            footers[name] = footer
    del seen
    for name, lines in footers.items():
        run.notes.append(f"{name}: lines {lines[0][0]}-{lines[-1][0]} after the last record are a report's footer "
                         "(one field each, after a blank line), not records; they are not read")
    rejected = {(r[0], r[1]) for r in run.rejects}
    for (name, line), (record_id, values) in sorted(silent.items()):
        if line not in gave[name] and line not in run.deleted[name] and (name, line) not in rejected:
            run.rejects.append((name, line, record_id, "", "", "the row gives no facts: every column the "
                                "mappings read is empty", values))
    run.notes += [f"{name}: no column {', '.join(sorted(columns))}; read as empty"
                  for name, columns in absent.items() if columns]
    run.notes += [f"{name}: no {column} column: {'each record is' if own else 'the records it refers to are'} "
                  f"named by {by}" for name, columns in named_by.items() for column, (by, own) in columns.items()]


def _reused(reuse, seen, tm, name, line, subject, file_number):
    """Note a row read again unchanged that gives ``subject`` a fact: its link to its line, and its
    subject among those seen (a duplicate of a changed row's means every row must be mapped)."""
    reuse.lines[name].add(line)
    reuse.links.add((subject, name, line))
    if tm.source.unique_subjects:
        key = hash((tm.name, subject))
        if key in seen:
            raise Miss(f"{name} line {line} repeats a record another row gives")
        seen[key] = file_number << 32 | line


def load_reference(run, target):
    """Load the system's reference files (``mappings/<system>/reference/*.ttl``: its stages, say)."""
    for path in sorted((run.plan.system_dir / "reference").glob("*.ttl")):
        name = f"reference/{path.name}"
        run.counts[name] = FileCounts()
        try:
            triples = [(q.subject, q.predicate, q.object) for q in ox.parse(path=str(path), format=ox.RdfFormat.TURTLE)]
        except SyntaxError as exc:  # a reference file a data architect edited: name it, and where
            raise MappingError(f"the reference data is not valid Turtle: {exc.msg}", file=path,
                               line=exc.lineno) from None
        run.reference.append((name, triples))
        target.add(triples)
    run.rows.reference = {t for _, triples in run.reference for t in triples}


def _deleted_column(header):
    folded = {c.casefold() for c in DELETED_COLUMNS}
    return next((c for c in header if c.casefold() in folded), None)


def _is_true(value):
    return bool(value) and value.strip().casefold() in TRUE_VALUES
