"""`tfspec serve`: SavedModel exports over TF Serving's REST API (needs TensorFlow).

`servables` finds and loads exports, `restjson` is TF Serving's request and response
JSON, `server` the HTTP server. The public entry point is `tfspec.serve`.
"""
