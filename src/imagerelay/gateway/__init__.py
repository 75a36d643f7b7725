"""The gateway: the OpenAI images API in front of every provider (`imagerelay serve`).

An edge, like the CLI: it translates OpenAI request bodies into an `ImageRequest` and a receipt
back into an OpenAI answer; everything in between is the same relay, store and ledger. Nothing
here is imported by `import imagerelay` or `imagerelay --help`: Starlette, uvicorn and
prometheus-client load only when `serve` runs.
"""
