"""Free-text replies: a request whose ``schema`` is :class:`TextReply` asks for plain text.

Stages ask for JSON that validates against a pydantic model; ``finmcq eval`` asks a model to
reason in its own words and to answer with one letter, exactly as the training pairs teach, so
no ``response_format`` may be sent (it would change what is measured). The engine treats such a
request like any other (limit, retries, breaker, cache, cost, budget); only the reply is taken
as it comes: the text, and whether it was cut off at ``max_tokens``.
"""

from __future__ import annotations

from pydantic import BaseModel


class TextReply(BaseModel):
    """The model's reply content as it was sent, and the finish reason the server gave."""

    text: str
    finish_reason: str | None = None

    @property
    def truncated(self) -> bool:
        """The reply stopped at ``max_tokens`` (kept as it is: a cut-off answer is an answer)."""
        return self.finish_reason == "length"


def text_reply(content: str | None, finish_reason: str | None) -> dict[str, str | None]:
    """The :class:`TextReply` fields of a raw choice (missing content counts as empty text)."""
    return {"text": content or "", "finish_reason": finish_reason}
