"""A sluice transform in Python: DynamoDB change records in, rows out.

As written it decodes exactly as builtin:ddb-json does; change
`row_for_the_sink` to change what reaches the sink. `./build` makes the
component, and `sluice guest test "$(./build | tail -1)" cases` checks it.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

from sluice_guest import ddb

# The table this instance serves, from `configure` (export lines name no
# table or key; the manifest does).
TABLE = types.TableConfig(source_table="", target_table="", keys=[], settings=[])

OPERATIONS = {
    "upsert": types.Operation.UPSERT,
    "delete": types.Operation.DELETE,
    "ttl-delete": types.Operation.TTL_DELETE,
}


class Transform(exports.Transform):
    def configure(self, config: types.TableConfig) -> None:
        """Called once per instance; an error stops the pipeline."""
        global TABLE
        if config.settings:
            raise Err(f"this transform has no settings, but was given {config.settings[0].name!r}")
        TABLE = config

    def transform(self, records: list[types.SourceRecord]) -> list[types.Outcome]:
        """Exactly one outcome per record, in order."""
        return [outcome(record) for record in records]


def outcome(record: types.SourceRecord) -> types.Outcome:
    try:
        if isinstance(record.format, types.RecordFormat_ExportLine):
            export = record.format.value
            change = ddb.decode_export_line(
                record.payload,
                record.sequence,
                table=TABLE.source_table,
                keys=TABLE.keys,
                export_time_micros=export.export_time_micros,
                incremental=export.incremental,
            )
        else:
            change = ddb.decode_stream_change(record.payload, record.sequence)
    except ddb.DecodeError as e:
        return types.Outcome_Error(str(e))
    row = types.Row(
        table=change.table,
        key=change.key,
        operation=OPERATIONS[change.operation],
        order=types.Order(micros=change.micros, tiebreak=change.tiebreak),
        event_name=change.event_name,
        event_id=change.event_id,
        new_image=change.new_image,
        old_image=change.old_image,
        error=None,
        extra=[],
    )
    return row_for_the_sink(row)


def row_for_the_sink(row: types.Row) -> types.Outcome:
    """Where to change rows: rewrite the images (`ddb.loads`/`ddb.to_json` keep
    numbers exact), add columns to `row.extra`, or skip records with
    `types.Outcome_Skip(reason)`."""
    return types.Outcome_Row(row)
