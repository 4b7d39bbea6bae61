"""``zoo serve``: bundles behind an HTTP server (Open Inference Protocol v2, role endpoints, OpenAI completions).

Importing this package imports nothing heavy; the server's modules (Starlette, uvicorn, ONNX Runtime) are
imported when ``zoo serve`` runs. See docs/serve.md.
"""
