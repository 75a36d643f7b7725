"""An offline stand-in for the image API of every registered provider that brings an emulator
dialect (the built-ins: xAI, OpenAI, Replicate and Gemini): a real HTTP server on 127.0.0.1.

It speaks each provider's wire format (its error shapes included), draws deterministic sandbox
images with Pillow, serves expiring image URLs, and takes a script of faults per route::

    with Emulator(keys={"xai": "xai-test"}) as emu:
        emu.script("xai.generations", Fault(status=429, headers={"retry-after": "1"}))
        ...  # point a client at emu.base_url("xai")

Routes: xai.generations, xai.edits, xai.chat, xai.api_key, xai.models, openai.generations,
openai.edits, openai.models, replicate.create, replicate.list, replicate.get, replicate.cancel,
replicate.files, replicate.model, gemini.generate, gemini.models, gemini.model, files (any hosted
image or upload URL); an unknown endpoint logs as "<provider>.unknown". The model listings
(xai.models, openai.models, replicate.model, gemini.models, gemini.model) serve `emu.listings`,
which a test edits to script drift from the catalog.

Faults, checked in this order: `latency` (sleep first), `drop` (hang up; with `truncate`, after the
headers and half the body), `status` (the provider's error body, or `body`), `malformed` (200, not
JSON), `body` alone (200 with it); the rest shape a normal answer: `empty`, `blocked`, `truncate`
(image bytes cut in half), `expired` (files route), and on replicate.create `prediction`
("failed", "canceled", "aborted", "stuck", "slow"), `error`, `seconds`; on gemini.generate
`blocked` (with `error` as the blockReason), `finish` (a finishReason and no content), `empty` (a
text-only answer) and, on a 429, `seconds` (the RetryInfo delay). `headers` are added to whatever
is answered; `answer_after` does the work at once and holds the answer that long (a create whose
prediction exists before its id reaches the client). A scripted fault takes precedence over the
key check.
"""

from imagerelay.emulator.server import Emulator, serve
from imagerelay.emulator.wire import Fault, LoggedRequest

__all__ = ["Emulator", "Fault", "LoggedRequest", "serve"]
