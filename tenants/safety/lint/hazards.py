"""What the lint reports: hazard kinds, their severities and fixes, and the Hazard record."""

from dataclasses import asdict, dataclass

DATA_LOSS, BREAKS_ROWS, LOCK, NON_TRANSACTIONAL = "data-loss", "breaks-rows", "lock", "non-transactional"
SEVERITIES = (DATA_LOSS, BREAKS_ROWS, LOCK, NON_TRANSACTIONAL)

#: kind -> (severity, fix). The kind is also the first part of an acknowledgement key.
KINDS = {
    "drop-table": (DATA_LOSS, "keep the table until its data is migrated or backed up, then acknowledge the drop"),
    "drop-column": (DATA_LOSS, "copy the data elsewhere first, or acknowledge that it may go"),
    "likely-rename": (DATA_LOSS, "write op.alter_column(table, old, new_column_name=new) instead of drop + add"),
    "narrow-type": (DATA_LOSS, "check the longest/largest value first, or widen instead of narrowing"),
    "destructive-sql": (DATA_LOSS, "restrict the statement with WHERE, or acknowledge the deletion"),
    "unreviewable": (DATA_LOSS, "review the revision by hand and acknowledge it"),
    "not-null-no-default": (BREAKS_ROWS, "add a server_default, or add nullable, backfill, then set NOT NULL"),
    "set-not-null": (BREAKS_ROWS, "backfill NULLs in the same revision first (UPDATE ... WHERE col IS NULL)"),
    "unique-constraint": (BREAKS_ROWS, "remove duplicates in the same revision first, or acknowledge"),
    "check-constraint": (BREAKS_ROWS, "fix violating rows first, or add it NOT VALID and VALIDATE later"),
    "index-lock": (LOCK, "op.create_index(..., postgresql_concurrently=True) inside an autocommit_block"),
    "foreign-key-lock": (LOCK, "create it with postgresql_not_valid=True, then VALIDATE CONSTRAINT separately"),
    "type-rewrite": (LOCK, "add a new column, backfill in batches, then swap; or accept the lock in a quiet window"),
    "non-transactional": (NON_TRANSACTIONAL, "keep such a revision to that one statement; it runs in its own step"),
    "sqlite-fails": (BREAKS_ROWS, "use op.batch_alter_table for ALTERs, and SQL both dialects accept"),
    "sqlite-function": (BREAKS_ROWS, "use a portable default: sa.text('CURRENT_TIMESTAMP')"),
    "rebuild-cascade": (LOCK, "keep foreign keys off while migrating (the portal does)"),
}
#: Hazards that do not exist on SQLite (no concurrent index builds, no NOT VALID, lengths not enforced).
POSTGRES_ONLY = {"index-lock", "foreign-key-lock", "type-rewrite", "narrow-type"}


@dataclass(frozen=True)
class Hazard:
    """One risky thing a revision does to a tenant."""

    revision: str
    operation: str
    table: str | None
    column: str | None
    kind: str
    severity: str
    message: str
    fix: str
    statement: str = ""
    acknowledged: bool = False
    acknowledgement: str | None = None

    @property
    def key(self) -> str:
        """The name an acknowledgement marker uses: `kind:table.column`, `kind:table` or `kind`."""
        if self.table and self.column:
            return f"{self.kind}:{self.table}.{self.column}"
        return f"{self.kind}:{self.table}" if self.table else self.kind

    def to_dict(self) -> dict:
        """Return the hazard as JSON-ready data."""
        return {**asdict(self), "key": self.key}


def make_hazard(revision: str, kind: str, operation: str, table: str | None, column: str | None,
                message: str, statement: str) -> Hazard:
    """Build a hazard of `kind` with the kind's severity and fix."""
    severity, fix = KINDS[kind]
    return Hazard(revision, operation, table, column, kind, severity, message, fix, statement)


def format_hazard(hazard: Hazard) -> str:
    """Return one line for a hazard: revision, severity, key, message and fix."""
    ack = f" [acknowledged: {hazard.acknowledgement}]" if hazard.acknowledged else ""
    return f"{hazard.revision} {hazard.severity} {hazard.key}: {hazard.message}{ack} (fix: {hazard.fix})"
