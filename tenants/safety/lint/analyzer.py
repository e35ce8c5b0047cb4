"""The lint's analysis: walk revisions' SQL statements, parsed by PostgreSQL's own parser (pglast).

A small catalog, replayed from base, knows each column's type, so a narrowing or a drop + add
that is really a rename can be told apart.
"""

from dataclasses import dataclass, field, replace

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ConstrType, ObjectType, TransactionStmtKind
from pglast.parser import ParseError

from tenants.safety.lint.hazards import KINDS, Hazard, make_hazard
from tenants.safety.lint.types import ColumnType, column_type, compatible, type_change


@dataclass
class _Revision:
    """What the analysis remembers while it walks one revision's statements."""

    revision: str
    created: set[str] = field(default_factory=set)
    added: list[tuple[str, str, ColumnType]] = field(default_factory=list)
    updated: set[tuple[str, str]] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)
    hazards: list[Hazard] = field(default_factory=list)
    dropped: dict[int, ColumnType | None] = field(default_factory=dict)

    def is_new(self, table: str, column: str | None = None) -> bool:
        """Return whether the table (or column) was made by this revision: it holds no old data."""
        return table in self.created or (column is not None and any(
            t == table and c == column for t, c, _ in self.added))


class Analyzer:
    """Walk revisions in order, keeping a catalog of tables and column types."""

    def __init__(self) -> None:
        self.catalog: dict[str, dict[str, ColumnType]] = {}

    def revision(self, revision: str, statements: list[str], error: str | None) -> list[Hazard]:
        """Return the hazards of one revision's statements (and update the catalog)."""
        rev = _Revision(revision)
        if error:
            rev.hazards.append(make_hazard(revision, "unreviewable", "render", None, None,
                                       f"cannot render this revision offline ({error})", ""))
        outside: list[str] = []
        for sql in statements:
            try:
                parsed = parse_sql(sql)
            except ParseError as e:
                rev.hazards.append(make_hazard(revision, "unreviewable", "execute", None, None,
                                           f"cannot parse statement ({e})", sql))
                continue
            for raw in parsed:
                reason = self._statement(rev, raw.stmt, sql)
                if reason:
                    outside.append(reason)
        self._renames(rev)
        if outside:
            rev.hazards.append(make_hazard(revision, "non-transactional", "autocommit", None, None,
                                       "runs outside a transaction: " + "; ".join(dict.fromkeys(outside)), ""))
        return rev.hazards

    def _statement(self, rev: _Revision, node: ast.Node, sql: str) -> str | None:
        """Analyse one statement; return why it must run outside a transaction, if it must."""
        table = getattr(getattr(node, "relation", None), "relname", None)
        if table == "alembic_version":
            return None
        if isinstance(node, ast.CreateStmt):
            rev.created.add(table)
            self.catalog[table] = {e.colname: column_type(e.typeName) for e in node.tableElts or ()
                                   if isinstance(e, ast.ColumnDef)}
        elif isinstance(node, ast.AlterTableStmt) and node.objtype == ObjectType.OBJECT_TABLE:
            for cmd in node.cmds:
                self._alter(rev, table, cmd, sql)
        elif isinstance(node, ast.RenameStmt):
            self._rename(node)
        elif isinstance(node, ast.IndexStmt):
            return self._index(rev, node, sql)
        elif isinstance(node, ast.DropStmt):
            return self._drop(rev, node, sql)
        elif isinstance(node, (ast.DeleteStmt, ast.UpdateStmt, ast.TruncateStmt)):
            self._dml(rev, node, sql)
        elif isinstance(node, ast.TransactionStmt) and node.kind in (
                TransactionStmtKind.TRANS_STMT_COMMIT, TransactionStmtKind.TRANS_STMT_BEGIN):
            return "commits the migration transaction (autocommit_block)"
        elif isinstance(node, (ast.VacuumStmt, ast.CreatedbStmt, ast.AlterSystemStmt)):
            return f"{type(node).__name__.removesuffix('Stmt').upper()} cannot run in a transaction"
        elif isinstance(node, ast.ReindexStmt) and any(
                getattr(p, "defname", None) == "concurrently" for p in node.params or ()):
            return "REINDEX CONCURRENTLY cannot run in a transaction"
        return None

    def _alter(self, rev: _Revision, table: str, cmd: ast.AlterTableCmd, sql: str) -> None:
        columns = self.catalog.setdefault(table, {})
        kind, name = cmd.subtype, cmd.name
        if kind == AlterTableType.AT_AddColumn:
            col = cmd.def_
            new_type = column_type(col.typeName)
            constraints = {c.contype for c in col.constraints or ()}
            not_null = col.is_not_null or ConstrType.CONSTR_NOTNULL in constraints
            has_default = bool({ConstrType.CONSTR_DEFAULT, ConstrType.CONSTR_IDENTITY,
                                ConstrType.CONSTR_GENERATED} & constraints)
            if not_null and not has_default and not rev.is_new(table):
                rev.hazards.append(make_hazard(rev.revision, "not-null-no-default", "add_column", table, col.colname,
                                           f"adds NOT NULL column {table}.{col.colname} without a server default: "
                                           "fails on a table that has rows", sql))
            rev.added.append((table, col.colname, new_type))
            columns[col.colname] = new_type
        elif kind == AlterTableType.AT_DropColumn:
            old = columns.pop(name, None)
            if not rev.is_new(table, name):
                rev.dropped[len(rev.hazards)] = old
                rev.hazards.append(make_hazard(rev.revision, "drop-column", "drop_column", table, name,
                                           f"drops column {table}.{name} and all its data", sql))
        elif kind == AlterTableType.AT_AlterColumnType:
            new_type, old = column_type(cmd.def_.typeName), columns.get(name)
            change = type_change(old, new_type)
            columns[name] = new_type
            if rev.is_new(table, name) or change == "none":
                return
            if change == "narrow":
                rev.hazards.append(make_hazard(rev.revision, "narrow-type", "alter_column", table, name,
                                           f"narrows {table}.{name} from {old} to {new_type}: values may be cut, "
                                           "rounded or refused", sql))
            else:
                was = f"from {old} " if old else ""
                rev.hazards.append(make_hazard(rev.revision, "type-rewrite", "alter_column", table, name,
                                           f"changes {table}.{name} {was}to {new_type}: rewrites the table "
                                           "under an ACCESS EXCLUSIVE lock", sql))
        elif kind == AlterTableType.AT_SetNotNull:
            if not rev.is_new(table, name) and (table, name) not in rev.updated:
                rev.hazards.append(make_hazard(rev.revision, "set-not-null", "alter_column", table, name,
                                           f"sets {table}.{name} NOT NULL: fails if any row holds NULL "
                                           "(and scans the table under lock)", sql))
        elif kind == AlterTableType.AT_AddConstraint:
            self._constraint(rev, table, cmd.def_, sql)

    def _constraint(self, rev: _Revision, table: str, con: ast.Constraint, sql: str) -> None:
        if rev.is_new(table):
            return
        columns = [k.sval for k in (con.keys or con.fk_attrs or ())]
        column = columns[0] if len(columns) == 1 else None
        name = con.conname or "unnamed"
        if con.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_EXCLUSION):
            if con.indexname:
                return  # USING INDEX: uniqueness is already proven by the existing index
            if table not in rev.touched:
                rev.hazards.append(make_hazard(rev.revision, "unique-constraint", "create_unique_constraint", table,
                                           column, f"adds unique constraint {name} on {table}: fails on "
                                           "existing duplicates", sql))
            rev.hazards.append(make_hazard(rev.revision, "index-lock", "create_unique_constraint", table, column,
                                       f"builds the index of {name} while {table} is locked against writes", sql))
        elif con.contype == ConstrType.CONSTR_CHECK and not con.skip_validation and table not in rev.touched:
            rev.hazards.append(make_hazard(rev.revision, "check-constraint", "create_check_constraint", table, column,
                                       f"adds check constraint {name} on {table}: fails if a row violates it",
                                       sql))
        elif con.contype == ConstrType.CONSTR_FOREIGN and not con.skip_validation:
            rev.hazards.append(make_hazard(rev.revision, "foreign-key-lock", "create_foreign_key", table, column,
                                       f"adds foreign key {name} on {table} validated at once: scans it while "
                                       f"{table} and {con.pktable.relname} are locked against writes", sql))

    def _rename(self, node: ast.RenameStmt) -> None:
        table = node.relation.relname if node.relation else None
        if node.renameType == ObjectType.OBJECT_COLUMN and table in self.catalog:
            columns = self.catalog[table]
            columns[node.newname] = columns.pop(node.subname, None)
        elif node.renameType == ObjectType.OBJECT_TABLE and table in self.catalog:
            self.catalog[node.newname] = self.catalog.pop(table)

    def _index(self, rev: _Revision, node: ast.IndexStmt, sql: str) -> str | None:
        table = node.relation.relname
        if node.concurrent:
            return "CREATE INDEX CONCURRENTLY cannot run in a transaction"
        if rev.is_new(table):
            return None
        params = [p.name for p in node.indexParams or () if getattr(p, "name", None)]
        column = params[0] if len(params) == 1 else None
        if node.unique and table not in rev.touched:
            rev.hazards.append(make_hazard(rev.revision, "unique-constraint", "create_index", table, column,
                                       f"adds unique index {node.idxname} on {table}: fails on existing "
                                       "duplicates", sql))
        rev.hazards.append(make_hazard(rev.revision, "index-lock", "create_index", table, column,
                                   f"builds index {node.idxname} without CONCURRENTLY: {table} is locked "
                                   "against writes until it is done", sql))
        return None

    def _drop(self, rev: _Revision, node: ast.DropStmt, sql: str) -> str | None:
        if node.concurrent:
            return "DROP INDEX CONCURRENTLY cannot run in a transaction"
        if node.removeType == ObjectType.OBJECT_TABLE:
            for obj in node.objects:
                table = obj[-1].sval
                self.catalog.pop(table, None)
                if not rev.is_new(table):
                    rev.hazards.append(make_hazard(rev.revision, "drop-table", "drop_table", table, None,
                                               f"drops table {table} and all its rows", sql))
        elif node.removeType == ObjectType.OBJECT_SCHEMA:
            for obj in node.objects:
                name = obj.sval if hasattr(obj, "sval") else obj[-1].sval
                rev.hazards.append(make_hazard(rev.revision, "drop-table", "execute", name, None,
                                           f"drops schema {name} with every table in it", sql))
        return None

    def _dml(self, rev: _Revision, node: ast.Node, sql: str) -> None:
        if isinstance(node, ast.TruncateStmt):
            for relation in node.relations:
                rev.touched.add(relation.relname)
                if not rev.is_new(relation.relname):
                    rev.hazards.append(make_hazard(rev.revision, "destructive-sql", "execute", relation.relname, None,
                                               f"TRUNCATE empties {relation.relname}", sql))
            return
        table = node.relation.relname
        rev.touched.add(table)
        if rev.is_new(table):
            return
        if isinstance(node, ast.DeleteStmt):
            what = "every row" if node.whereClause is None else "the rows matching its WHERE"
            rev.hazards.append(make_hazard(rev.revision, "destructive-sql", "execute", table, None,
                                       f"DELETE removes {what} of {table}", sql))
            return
        targets = [t.name for t in node.targetList]
        rev.updated.update((table, c) for c in targets)
        # Filling a column this revision added destroys nothing: it held only NULL or its default.
        old = [c for c in targets if not rev.is_new(table, c)]
        if node.whereClause is None and old:
            rev.hazards.append(make_hazard(rev.revision, "destructive-sql", "execute", table,
                                       old[0] if len(old) == 1 else None,
                                       f"UPDATE without WHERE overwrites {', '.join(old)} in every row of {table}",
                                       sql))

    def _renames(self, rev: _Revision) -> None:
        """Turn a drop whose table gains a compatible column in the same revision into a likely rename."""
        unmatched = [(t, c, ty) for t, c, ty in rev.added]
        for index, old_type in rev.dropped.items():
            drop = rev.hazards[index]
            match = next((a for a in unmatched if a[0] == drop.table and compatible(old_type, a[2])), None)
            if match is None:
                continue
            unmatched.remove(match)
            severity, fix = KINDS["likely-rename"]
            rev.hazards[index] = replace(
                drop, kind="likely-rename", severity=severity, operation="drop_column + add_column",
                fix=f"op.alter_column({drop.table!r}, {drop.column!r}, new_column_name={match[1]!r})",
                message=f"drops {drop.table}.{drop.column} and adds {drop.table}.{match[1]} "
                        f"({match[2]}) in the same revision: probably a rename written as drop + add; "
                        f"the data of {drop.column} is lost")
