"""The OpenAPI document, as FastAPI builds it from the routes, finished in one place.

- Every error answer is problem details: FastAPI's own 422 schema (`HTTPValidationError`) is
  replaced by `Problem` (`schemas/problems.py`) under `application/problem+json`.
- A legacy list (a bare array by default, `api/pagination.py`) also lists its page answer, under
  the page media type, with the page model as a component.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from schemas.problems import PROBLEM_MEDIA_TYPE, FieldError, Problem

from .pagination import PAGE_MEDIA_TYPE, PAGE_MODEL_KEY

PROBLEM_REF = "#/components/schemas/Problem"


def _component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The models as OpenAPI components (refs between them rewritten)."""
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}


def finish(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.update(_component_schemas(Problem, FieldError))
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            # The page model's schema, merged into the operation from the route's openapi_extra.
            page = operation.pop(PAGE_MODEL_KEY, None)
            if page is not None:
                page_schema = dict(page["schema"])
                for name, component in page_schema.pop("$defs", {}).items():
                    schemas.setdefault(name, component)
                schemas[page["name"]] = page_schema
                content = operation["responses"]["200"].setdefault("content", {})
                content[PAGE_MEDIA_TYPE] = {"schema": {"$ref": f"#/components/schemas/{page['name']}"}}
            for status, response in operation.get("responses", {}).items():
                if status.startswith(("4", "5")):
                    response["content"] = problem_content()
    return doc


def install(app: FastAPI) -> None:
    """Serve the finished document at `app.openapi_url` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                ),
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
