"""Links for every row of a page, built once per page.

`url_for` walks the URL map and runs every URL-defaults hook on each call: on a list of 20
rows that was most of the Python time the rows cost beyond the page's frame. A row's link
differs from its neighbour's in one value only, so the link is built once with a placeholder
and the row's value is put in its place. Values that URL encoding would change (anything but
unreserved characters) still go through `url_for`, so every link is exactly what it builds.
"""

import re
from collections.abc import Callable
from typing import Any

from flask import g, url_for

UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+")  # left alone by every URL encoder (RFC 3986)
PLACEHOLDER = "rowvalue0placeholder"


def row_url(endpoint: str, name: str, **values: Any) -> Callable[[Any], str]:
    """Return a function of one value giving `url_for(endpoint, **{name: value}, **values)`."""
    built = url_for(endpoint, **{name: PLACEHOLDER}, **values)
    if built.count(PLACEHOLDER) != 1:  # the placeholder collides with a fixed part: build each link
        return lambda value: url_for(endpoint, **{name: value}, **values)
    prefix, suffix = built.split(PLACEHOLDER)

    def link(value: Any) -> str:
        text = str(value)
        if value is not None and UNRESERVED.fullmatch(text):  # url_for leaves a None out
            return f"{prefix}{text}{suffix}"
        return url_for(endpoint, **{name: value}, **values)

    return link


def cached_row_url(endpoint: str, name: str, **values: Any) -> Callable[[Any], str]:
    """Return row_url(...), made once per request for the same endpoint and fixed values."""
    cache = g.setdefault("row_urls", {})
    key = (endpoint, name, tuple(sorted((k, str(v)) for k, v in values.items())))
    if key not in cache:
        cache[key] = row_url(endpoint, name, **values)
    return cache[key]
