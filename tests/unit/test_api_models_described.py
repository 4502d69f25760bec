"""The legacy REST spec's shapes are described in the OpenAPI document: every field of these
answers has a description, and each model an example that is itself a valid answer."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from api.models import ApiKeyCreated, ApiKeyMe, ApiKeyOut, ServerOut, ShareOut, Token, UserOut

DESCRIBED = [UserOut, Token, ServerOut, ShareOut, ApiKeyOut, ApiKeyCreated, ApiKeyMe]


@pytest.mark.parametrize("model", DESCRIBED, ids=lambda m: m.__name__)
def test_every_field_is_described_with_a_valid_example(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    assert schema.get("description"), model.__name__
    undescribed = [name for name, field in schema["properties"].items() if not field.get("description")]
    assert undescribed == [], model.__name__
    (example,) = schema["examples"]
    assert set(example) == set(schema["properties"])  # an example value for every field
    model.model_validate(example)
