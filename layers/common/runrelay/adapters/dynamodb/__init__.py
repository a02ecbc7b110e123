"""The tasks table: the only code that knows its keys, prefixes, indexes and typed values.

`tasks` and `jobs` are the repositories the services use (through `runrelay.ports`), `stream` reads the
table's stream as domain changes, `inspection` serves operators' tools (CLI, chaos, demo), `schema`
holds the layout, `codec` the typed values and `writes` the conditional-write/transaction helpers.
"""
