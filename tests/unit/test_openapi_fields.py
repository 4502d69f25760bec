"""Every field of every model in the OpenAPI document has a description and an example, so a user
reading `/docs` knows what each field means (its unit, its bounds, what null says) and what a
value looks like. The document is walked, not a list of models: a model added to a route is
checked from then on.

A field that is a model of its own (a reference, a list of them, or either or null) takes its
example from that model, whose fields are checked in turn: Swagger UI and ReDoc build the example
from them.
"""

from __future__ import annotations

from typing import Any

from api.openapi_dump import document

REF_PREFIX = "#/components/schemas/"


def _referenced(field: dict[str, Any]) -> str | None:
    """The component a field is (a reference, an array of references, either of them or null)."""
    options = field.get("anyOf", [field])
    refs = []
    for option in options:
        if option.get("type") == "null":
            continue
        target = option.get("items", option) if option.get("type") == "array" else option
        ref = target.get("$ref")
        if not isinstance(ref, str) or not ref.startswith(REF_PREFIX):
            return None
        refs.append(ref.removeprefix(REF_PREFIX))
    return refs[0] if len(refs) == 1 else None


def _faults(doc: dict[str, Any]) -> tuple[int, list[str]]:
    schemas: dict[str, Any] = doc["components"]["schemas"]
    fields = 0
    faults: list[str] = []
    for model, schema in sorted(schemas.items()):
        for name, field in schema.get("properties", {}).items():
            fields += 1
            missing = []
            if not str(field.get("description", "")).strip():
                missing.append("description")
            has_example = bool(field.get("examples")) or "example" in field
            if not has_example and _referenced(field) not in schemas:
                missing.append("example")
            if missing:
                faults.append(f"{model}.{name}: no {' and no '.join(missing)}")
    return fields, faults


def test_every_field_has_a_description_and_an_example() -> None:
    fields, faults = _faults(document())
    assert fields > 300  # the walk found the document's models
    assert faults == [], f"{len(faults)} of {fields} fields:\n" + "\n".join(faults)


def test_the_walk_finds_a_missing_description_or_example() -> None:
    doc = {
        "components": {
            "schemas": {
                "A": {
                    "properties": {
                        "bare": {"type": "string"},
                        "described": {"type": "string", "description": "d"},
                        "complete": {"type": "string", "description": "d", "examples": ["x"]},
                        "b": {
                            "anyOf": [{"$ref": "#/components/schemas/B"}, {"type": "null"}],
                            "description": "d",
                        },
                        "bs": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/B"},
                            "description": "d",
                        },
                        "nowhere": {"$ref": "#/components/schemas/Missing", "description": "d"},
                    }
                },
                "B": {"properties": {"x": {"type": "integer", "description": "d", "examples": [1]}}},
            }
        }
    }
    assert _faults(doc) == (
        7,
        ["A.bare: no description and no example", "A.described: no example", "A.nowhere: no example"],
    )


def _parameter_faults(doc: dict[str, Any]) -> tuple[int, list[str]]:
    """Every path, query and header parameter has a description, and an example unless it is a
    removed one (deprecated: a request with it is refused, so it has no value to show)."""
    count = 0
    faults: list[str] = []
    for path, operations in sorted(doc["paths"].items()):
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                count += 1
                where = f"{method.upper()} {path} {parameter['in']} {parameter['name']}"
                schema = parameter.get("schema", {})
                if not str(parameter.get("description", "")).strip():
                    faults.append(f"{where}: no description")
                examples = ("example" in parameter, bool(parameter.get("examples")), "example" in schema)
                if not any(examples) and not schema.get("examples") and not parameter.get("deprecated"):
                    faults.append(f"{where}: no example")
    return count, faults


def test_every_parameter_has_a_description_and_an_example() -> None:
    count, faults = _parameter_faults(document())
    assert count > 80  # the walk found the operations' parameters
    assert faults == [], f"{len(faults)} of {count} parameter faults:\n" + "\n".join(faults)


def test_the_parameter_walk_finds_a_missing_description_or_example() -> None:
    doc = {"paths": {"/x/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "schema": {}}]}}}}
    assert _parameter_faults(doc) == (
        1,
        ["GET /x/{id} path id: no description", "GET /x/{id} path id: no example"],
    )
