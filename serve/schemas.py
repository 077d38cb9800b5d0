"""Request and response bodies of the HTTP API. Request models accept exactly one input
shape each and say what is wrong otherwise; the handlers add the limits of the deployment.

The published schema says exactly what is accepted (Schemathesis checks both ways): optional
keys are left out, never null, and /predict takes one of three shapes (`oneOf`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=False)]


def _without_nulls(schema: dict[str, Any]) -> None:
    """Optional keys as the API takes them: absent, not null."""
    for prop in schema.get("properties", {}).values():
        options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
        if options:
            prop.update(options[0])
        if prop.get("default", "") is None:
            del prop["default"]


def _exactly_one_shape(schema: dict[str, Any], model: type) -> None:
    _without_nulls(schema)

    def only(key: str, *others: str) -> dict[str, Any]:
        return {"required": [key], "not": {"anyOf": [{"required": [o]} for o in others]}}

    schema["oneOf"] = [
        only("text", "texts", "pairs"),
        only("texts", "text", "text_pair", "pairs"),
        only("pairs", "text", "text_pair", "texts"),
    ]


class _Request(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra=lambda schema, model: _without_nulls(schema)
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, values: Any) -> Any:
        if isinstance(values, dict):
            nulls = [key for key, value in values.items() if value is None]
            if nulls:
                raise ValueError(f"{nulls[0]}: null is not a value here; leave the key out")
        return values


class PredictRequest(_Request):
    """One of: `text` (+ optional `text_pair`), `texts`, or `pairs`."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_shape)

    text: Text | None = None
    text_pair: Text | None = None
    texts: list[Text] | None = Field(default=None, min_length=1)
    pairs: list[Annotated[list[Text], Field(min_length=2, max_length=2)]] | None = Field(
        default=None, min_length=1
    )

    @model_validator(mode="after")
    def _one_shape(self) -> PredictRequest:
        given = [name for name in ("text", "texts", "pairs") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError('send exactly one of "text", "texts" or "pairs"')
        if self.text_pair is not None and self.text is None:
            raise ValueError('"text_pair" goes with "text"; for several pairs send "pairs"')
        return self

    def inputs(self) -> list[tuple[str, str | None]]:
        if self.text is not None:
            return [(self.text, self.text_pair)]
        if self.texts is not None:
            return [(text, None) for text in self.texts]
        return [(first, second) for first, second in self.pairs or []]


class ExplainRequest(_Request):
    text: Text
    text_pair: Text | None = None


class PredictionBody(BaseModel):
    label: str
    score: float
    probabilities: dict[str, float]
    truncated: bool


class PredictResponse(BaseModel):
    predictions: list[PredictionBody]
    warnings: list[str] = []


class TokenBody(BaseModel):
    token: str
    score: float


class ExplainResponse(PredictionBody):
    tokens: list[TokenBody]
    method: str
    convergence_delta: float
    warnings: list[str] = []


class ErrorBody(BaseModel):
    error: str
