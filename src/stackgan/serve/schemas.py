"""The API's data: server settings (:class:`ServeConfig`, whose limits are part of the API) and
the request and response bodies of ``POST /v1/images`` (pydantic models, which FastAPI turns
into the OpenAPI page at ``/docs``)."""

import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from stackgan.text import MAX_CAPTION_CHARS

MAX_SEED = 2**53 - 1  # the largest integer a JavaScript number holds exactly (the web page)
RANDOM_SEED_BELOW = 2**31  # a null seed draws one below this: short enough to read and type
MAX_UNKNOWN_FIELDS = 5  # more unknown fields in a body are refused as one error
MAX_TIMEOUT_S = 3600.0  # past an hour a "timeout" no longer protects anything


def check_api_key(key: str) -> None:
    """Refuse a key no request could ever match.

    Starlette decodes header values as Latin-1 and clients strip the spaces around them, so a
    non-ASCII key or one padded with spaces (or holding any) would be compared against bytes
    that never equal it: every request would get 401, silently.

    Raises:
        ValueError: the key is empty, or not printable ASCII without spaces.
    """
    if not key.strip():
        raise ValueError("the API key is empty")
    bad = next((c for c in key if not "!" <= c <= "~"), None)
    if bad is not None:
        raise ValueError(
            f"the API key holds {bad!r} (U+{ord(bad):04X}): use printable ASCII without spaces, "
            "the only characters an HTTP header carries intact"
        )


@dataclass(frozen=True)
class ServeConfig:
    """Server settings; the limits are part of the API (``GET /v1/models`` lists them).

    Attributes:
        max_batch: most images in one sampler call (whose generator runs 32 rows at a time).
        max_wait_ms: how long a request waits for others to share its batch (only under load).
        queue_size: most requests waiting; a full queue answers 503 with ``Retry-After``.
        max_captions: most captions in one request.
        max_images: most images in one request (captions x num_images).
        max_body_bytes: largest request body; larger is a 413.
        api_key: when set, the API routes need ``Authorization: Bearer KEY`` or ``X-API-Key``;
            printable ASCII without spaces (a header carries nothing else intact).
        header_timeout_s: a connection that has not sent a complete request header this long
            after opening (or after its last response) is closed, with a 408 if it sent part.
        body_timeout_s: a request body not complete this long after its header is a 408.
        keep_alive_s: an idle keep-alive connection is closed after this long.
    """

    max_batch: int = 32
    max_wait_ms: float = 5.0
    queue_size: int = 64
    max_captions: int = 16
    max_images: int = 32
    max_body_bytes: int = 256 * 1024
    api_key: str | None = None
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_batch", "queue_size", "max_captions", "max_images", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if not 0 < value <= MAX_TIMEOUT_S:
                raise ValueError(f"{name} must be in (0, {MAX_TIMEOUT_S:g}], got {value}")
        if self.api_key is not None:
            check_api_key(self.api_key)

    def limits(self) -> dict[str, int]:
        """The request limits, as ``GET /v1/models`` reports them."""
        return {
            "max_captions": self.max_captions,
            "max_caption_chars": MAX_CAPTION_CHARS,
            "max_images": self.max_images,
            "max_body_bytes": self.max_body_bytes,
            "max_seed": MAX_SEED,
        }


Caption = Annotated[str, StringConstraints(max_length=MAX_CAPTION_CHARS)]


class ImagesRequest(BaseModel):
    """``POST /v1/images``: what to generate. Types are strict (``"3"`` is not a number) and
    unknown fields are refused, so that a typo is an error rather than a silent default."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "captions": ["a big red star on a sky blue background"],
                    "seed": 7,
                    "num_images": 2,
                    "stages": True,
                    "format": "base64",
                }
            ]
        },
    )

    captions: list[Caption] = Field(
        default_factory=list,
        description="Sentences, one image set each (at most `max_captions`, each at most "
        f"{MAX_CAPTION_CHARS} characters; see GET /v1/models). Omit for an unconditional model.",
    )
    model: str | None = Field(None, description="A name from GET /v1/models; null: the default.")
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | None = Field(
        None,
        description="Seeds the noise; the same request with the same seed gives the same "
        "images. Null picks one at random; the response says which.",
    )
    num_images: int = Field(
        1, ge=1, description="Images per caption (in all, for an unconditional model)."
    )
    stages: bool = Field(False, description="Also return every stage's images.")
    format: Literal["png", "base64"] = Field(
        "base64",
        description='"base64": each image a base64 PNG string; "png": a data URI '
        "(data:image/png;base64,...), usable as an <img> src.",
    )

    # the server's caption limit, set by images_request_model; None: unchecked here
    max_captions: ClassVar[int | None] = None

    @field_validator("captions", mode="before")
    @classmethod
    def _not_too_many(cls, value: Any) -> Any:
        """An over-long list is refused before any caption is looked at: a 256 KB body of
        ``[1,1,...]`` would otherwise be 130,000 errors to build (1.1 s, a 9 MB answer)."""
        limit = cls.max_captions
        if limit is not None and isinstance(value, list) and len(value) > limit:
            raise ValueError(f"{len(value)} captions; the limit per request is {limit}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        """Many unknown fields as one error (``extra="forbid"`` makes one per key: a body of
        30,000 junk keys would be 30,000 errors); a few are left to it, which names each."""
        if isinstance(data, dict) and len(data) > len(cls.model_fields) + MAX_UNKNOWN_FIELDS:
            unknown = [k for k in data if k not in cls.model_fields]
            if len(unknown) > MAX_UNKNOWN_FIELDS:
                shown = ", ".join(repr(str(k)[:40]) for k in unknown[:3])
                raise ValueError(f"{len(unknown)} unknown fields: {shown}, ...")
        return data


def images_request_model(max_captions: int) -> type[ImagesRequest]:
    """:class:`ImagesRequest` with the server's caption limit checked on the list itself,
    before its items."""
    return type("ImagesRequest", (ImagesRequest,), {"max_captions": max_captions})


class StageImages(BaseModel):
    """One stage's images (Stage-I first)."""

    stage: int
    resolution: int
    images: list[str]


class ImagesResponse(BaseModel):
    """``POST /v1/images``: the images, and all it takes to make them again."""

    model: str
    seed: int = Field(description="The seed used: send it back to get the same images.")
    captions: list[str]
    num_images: int
    resolution: int
    format: str
    images: list[str] = Field(
        description="Final-stage PNGs, caption-major: image j of caption i at i*num_images+j."
    )
    stages: list[StageImages] | None = Field(
        None, description="Every stage's images (same order), when `stages` was true."
    )
    batch_images: int = Field(description="Images in the generator call that made these.")
    batch_requests: int = Field(description="Requests that shared that call.")
    timing_ms: dict[str, float]


def settings_json(config: ServeConfig) -> str:
    """The settings as one JSON line (for the start-up log), the API key hidden."""
    d = asdict(config)
    d["api_key"] = "set" if config.api_key else None
    return json.dumps(d)
