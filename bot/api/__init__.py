"""`voicebot api`: the OpenAI-compatible HTTP speech API (issue 20, being built).

So far:
- `request`: OpenAI's `POST /v1/audio/speech` body, read and checked (pure).
- `errors`: every failure in OpenAI's error shape, with its status and `Retry-After`.
"""
