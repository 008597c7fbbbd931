"""Keep private names out of the API reference that autodoc builds.

Two things autodoc would otherwise publish: parameters whose names start with
``_`` (a dataclass's private fields are parameters of its ``__init__``), in the
signature and in the parameter types ``autodoc_typehints = "description"``
lists, and the
"canonical" alias of each class defined in a private module (``DeliveryContext``
lives in ``flowforge._context``), which Sphinx writes into ``objects.inv``
beside the public name. The aliases still resolve cross-references inside the
build; they are only left out of the published inventory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from sphinx.application import Sphinx
from sphinx.domains.python import PythonDomain
from sphinx.util.typing import ExtensionMetadata

OPENING = {"(": ")", "[": "]", "{": "}"}


def is_private(name: str) -> bool:
    """Return whether a dotted name has a private part, or lies in the engine."""
    parts = name.split(".")
    return any(part.startswith("_") and part != "__call__" for part in parts) or (
        parts[:2] == ["flowforge", "engine"]
    )


class PublicPythonDomain(PythonDomain):
    """The Python domain, without private names in the objects it lists."""

    def get_objects(self) -> Iterator[tuple[str, str, str, str, str, int]]:
        """List the domain's objects, the private aliases left out."""
        for entry in super().get_objects():
            if not is_private(entry[0]):
                yield entry


def split_parameters(text: str) -> list[str]:
    """Split a parameter list at its top-level commas."""
    parts, depth, quote, start = [], 0, "", 0
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote and text[index - 1] != "\\" else quote
        elif char in "'\"":
            quote = char
        elif char in OPENING:
            depth += 1
        elif char in OPENING.values():
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def drop_private_parameters(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """Remove the parameters whose names start with ``_`` from a signature."""
    types = recorded_types(app).get(name, {})
    for parameter in [key for key in types if key.startswith("_")]:
        del types[parameter]
    if not signature or not signature.startswith("("):
        return None  # unchanged; let other handlers see it
    kept = [
        part
        for part in split_parameters(signature[1:-1])
        if not part.lstrip("*").startswith("_")
    ]
    return f"({', '.join(kept)})", return_annotation


def recorded_types(app: Sphinx) -> dict[str, dict[str, str]]:
    """Return the parameter types autodoc recorded for the current page."""
    document: object = getattr(app.env, "current_document", None)  # Sphinx 8.2+
    found: object = getattr(document, "autodoc_annotations", None)
    if found is None:
        found = app.env.temp_data.setdefault("annotations", {})
    return cast("dict[str, dict[str, str]]", found)


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the signature filter and the filtered Python domain."""
    app.add_domain(PublicPythonDomain, override=True)
    app.connect("autodoc-process-signature", drop_private_parameters)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
