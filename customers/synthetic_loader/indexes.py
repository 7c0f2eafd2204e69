"""Setting foreign keys, unique constraints and secondary indexes aside for a bulk load.

Rebuilding them once at the end (which re-validates every row) is several times faster than
maintaining them row by row during COPY.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SetAside:
    drop: list[str]
    restore: list[tuple[str, str]]  # (index or constraint, statement)


def set_aside_indexes(cursor, tables: list[str]) -> SetAside:
    """Foreign keys, unique constraints and secondary indexes of the tables, with their exact definitions.

    Primary keys and check constraints stay (they are cheap). A unique constraint that a foreign
    key from some other table relies on stays too.
    """
    cursor.execute(
        """
        SELECT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid), c.contype
        FROM pg_constraint c
        WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype IN ('f', 'u')
          AND NOT (c.contype = 'u' AND EXISTS (
                SELECT 1 FROM pg_constraint f
                WHERE f.contype = 'f' AND f.conindid = c.conindid AND NOT f.conrelid = ANY(%s::regclass[])))
        ORDER BY c.contype, 1, 2
        """,
        [tables, tables],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
        ORDER BY 1
        """,
        [tables],
    )
    indexes = cursor.fetchall()
    foreign = [c for c in constraints if c[3] == "f"]
    unique = [c for c in constraints if c[3] == "u"]
    drop = [f"ALTER TABLE {t} DROP CONSTRAINT {name}" for t, name, _, _ in foreign + unique]
    drop += [f"DROP INDEX {name}" for name, _ in indexes]
    restore = [(name, definition) for name, definition in indexes]
    restore += [
        (name, f"ALTER TABLE {t} ADD CONSTRAINT {name} {definition}")
        for t, name, definition, _ in unique + foreign
    ]
    return SetAside(drop, restore)
