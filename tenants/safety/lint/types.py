"""Column types as PostgreSQL's parser reports them, and what changing one costs.

A type change either narrows (values may be cut, rounded or refused: data loss), rewrites
the table under an ACCESS EXCLUSIVE lock, or is free (binary coercible, catalog only).
"""

from dataclasses import dataclass

ALIASES = {
    "serial": "int4", "serial4": "int4", "int": "int4", "integer": "int4", "smallint": "int2",
    "smallserial": "int2", "serial2": "int2", "bigint": "int8", "bigserial": "int8", "serial8": "int8",
    "decimal": "numeric", "character varying": "varchar", "character": "bpchar", "char": "bpchar",
    "boolean": "bool", "real": "float4", "double precision": "float8", "float": "float8",
}
FAMILIES = {
    "int2": "integer", "int4": "integer", "int8": "integer", "numeric": "numeric", "float4": "float",
    "float8": "float", "varchar": "string", "text": "string", "bpchar": "string", "bool": "boolean",
    "timestamp": "datetime", "timestamptz": "datetime", "date": "date", "time": "time", "timetz": "time",
    "json": "json", "jsonb": "json", "uuid": "uuid", "bytea": "binary",
}
INT_BYTES = {"int2": 2, "int4": 4, "int8": 8}


@dataclass(frozen=True)
class ColumnType:
    """A column type: canonical name plus its modifiers (length, precision, scale)."""

    name: str
    mods: tuple[int, ...] = ()

    @property
    def family(self) -> str:
        return FAMILIES.get(self.name, self.name)

    def __str__(self) -> str:
        return f"{self.name}({', '.join(map(str, self.mods))})" if self.mods else self.name


def column_type(type_name) -> ColumnType:  # type: ignore[no-untyped-def]
    """Build a ColumnType from a pglast TypeName node."""
    name = type_name.names[-1].sval.lower()
    mods = []
    for mod in type_name.typmods or ():
        value = getattr(getattr(mod, "val", None), "ival", None)
        if isinstance(value, int):
            mods.append(value)
    return ColumnType(ALIASES.get(name, name), tuple(mods))


def compatible(a: ColumnType | None, b: ColumnType | None) -> bool:
    """Return whether data of type `a` fits a column of type `b` without conversion trouble."""
    return a is None or b is None or a.family == b.family


def _string_change(old: ColumnType, new: ColumnType) -> str:
    old_len = old.mods[0] if old.mods and old.name != "text" else None
    new_len = new.mods[0] if new.mods and new.name != "text" else None
    if new_len is not None and (old_len is None or new_len < old_len):
        return "narrow"
    if old.name == "bpchar" or new.name == "bpchar":
        return "rewrite"  # char(n) pads and trims: a real conversion
    return "none"


def _numeric_change(old: ColumnType, new: ColumnType) -> str:
    if not new.mods:
        return "none"
    if not old.mods:
        return "narrow"
    p1, s1 = old.mods[0], (old.mods[1] if len(old.mods) > 1 else 0)
    p2, s2 = new.mods[0], (new.mods[1] if len(new.mods) > 1 else 0)
    if s2 < s1 or p2 - s2 < p1 - s1:
        return "narrow"
    return "none" if s2 == s1 else "rewrite"


LOSSY_FAMILY_MOVES = {("numeric", "integer"), ("float", "integer"), ("numeric", "float"), ("datetime", "date"),
                      ("datetime", "time")}


def type_change(old: ColumnType | None, new: ColumnType) -> str:
    """Classify a column type change: 'none', 'narrow' (may lose data) or 'rewrite' (locks and rewrites)."""
    if old is None:
        return "rewrite"  # unknown starting type: assume the expensive case
    if old == new:
        return "none"
    if old.family != new.family:
        return "narrow" if (old.family, new.family) in LOSSY_FAMILY_MOVES else "rewrite"
    if old.family == "integer":
        return "narrow" if INT_BYTES[new.name] < INT_BYTES[old.name] else "rewrite"
    if old.family == "string":
        return _string_change(old, new)
    if old.family == "numeric":
        return _numeric_change(old, new)
    if old.family == "float":
        return "narrow" if new.name == "float4" else "rewrite"
    return "rewrite"
