"""The field types request bodies are made of.

Every body field is a JSON string: a number where a string is expected is refused, never
coerced (strict), and a value no database column should hold is refused as well.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StrictStr
from pydantic_core import PydanticCustomError

MAX_FIELD_LENGTH = 4096


def _acceptable(value: str) -> str:
    # NUL ends strings in C and in some drivers; lone surrogates are valid JSON escapes but
    # not text (pydantic refuses those itself, as `string_unicode`).
    if "\x00" in value:
        raise PydanticCustomError("not_acceptable", "The value holds a NUL character.")
    return value


#: An optional string field: absent or null is None, "" stays "".
Text = Annotated[StrictStr, Field(max_length=MAX_FIELD_LENGTH), AfterValidator(_acceptable)]

#: A required string field: absent, null and "" all count as missing.
RequiredText = Annotated[
    StrictStr, Field(min_length=1, max_length=MAX_FIELD_LENGTH), AfterValidator(_acceptable)
]
