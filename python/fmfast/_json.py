"""The one JSON parse that untrusted text goes through: every failure is an :class:`InvalidInputError`.

``json.loads`` recurses once per nesting level, so a document nested 100,000 deep raises
``RecursionError``, and a number of more than 4,300 digits raises a plain ``ValueError``; both
become an error that names what was being read.
"""

from __future__ import annotations

import json
from typing import Any

from fmfast.exceptions import InvalidInputError


def loads(text: str | bytes, what: str) -> Any:
    """The value of the JSON document ``text``; ``what`` names it in the error (``"line 3"``, a file name).

    Raises:
        InvalidInputError: ``text`` is not JSON, not UTF-8, or nested too deeply to parse.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidInputError(f"{what} is JSON nested too deeply to parse") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise InvalidInputError(f"{what} is not valid JSON: {error}") from None
