"""The reviewed SQL file of `for-each-tenant sql`: parsed before any tenant is touched.

The file runs inside each tenant's transaction, under its lock and timeouts. A statement that
ends or starts a transaction (COMMIT, ROLLBACK, BEGIN, ...) or changes the session
(SET / RESET without LOCAL, set_config(..., false), DISCARD) would escape that transaction and
outlive it on a pooled connection (`SET search_path` pointing the next tenant at this one's
tables), so such a file is refused whole. PostgreSQL's own parser (pglast) reads it.
"""

from pglast import parse_sql
from pglast.ast import A_Const, Boolean, DiscardStmt, FuncCall, TransactionStmt, VariableSetStmt
from pglast.enums import TransactionStmtKind
from pglast.parser import ParseError
from pglast.visitors import Visitor

from tenants.core.errors import InvalidUsage

# Inside the tenant's transaction: savepoints and a rollback to one stay in it.
ALLOWED_TRANSACTION = {TransactionStmtKind.TRANS_STMT_SAVEPOINT, TransactionStmtKind.TRANS_STMT_RELEASE,
                       TransactionStmtKind.TRANS_STMT_ROLLBACK_TO}


class _Escapes(Visitor):
    """Collect what in a parsed script would act beyond the tenant's transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def visit_TransactionStmt(self, _ancestors, node: TransactionStmt) -> None:  # type: ignore[no-untyped-def]
        if node.kind not in ALLOWED_TRANSACTION:
            self.found.append(node.kind.name.removeprefix("TRANS_STMT_").replace("_", " "))

    def visit_VariableSetStmt(self, _ancestors, node: VariableSetStmt) -> None:  # type: ignore[no-untyped-def]
        if not node.is_local and (node.name or "").upper() != "TRANSACTION":
            verb = "RESET" if node.kind.name.startswith("VAR_RESET") else "SET"
            self.found.append(f"{verb} {node.name or 'ALL'}".strip())

    def visit_DiscardStmt(self, _ancestors, node: DiscardStmt) -> None:  # type: ignore[no-untyped-def]
        self.found.append("DISCARD")

    def visit_FuncCall(self, _ancestors, node: FuncCall) -> None:  # type: ignore[no-untyped-def]
        name = node.funcname[-1].sval if node.funcname else ""
        if name.lower() != "set_config":
            return
        local = node.args and len(node.args) == 3 and isinstance(node.args[2], A_Const) \
            and isinstance(node.args[2].val, Boolean) and node.args[2].val.boolval
        if not local:
            self.found.append("set_config(..., false)")


def check_sql_file(sql: str, path: str = "the SQL file") -> None:
    """Refuse (InvalidUsage) a script that cannot be parsed or would escape the tenant's transaction."""
    try:
        statements = parse_sql(sql)
    except ParseError as e:
        raise InvalidUsage(f"{path} cannot be parsed by PostgreSQL's parser: {e}; no tenant was touched") from e
    escapes = _Escapes()
    escapes(statements)
    if escapes.found:
        found = ", ".join(dict.fromkeys(escapes.found))
        raise InvalidUsage(f"{path} contains {found}: it runs inside each tenant's transaction, so transaction "
                           "control and session settings are refused (use SET LOCAL, set_config(..., true)); "
                           "no tenant was touched")
