"""The language: read a spec (DSL or JSON), check it, format it. Never imports TensorFlow.

Text in: `parser` (the DSL) and `jsonreader` (JSON) build the IR with its positions
(`located`); `schema`, `catalog`, `sources` and `check` find what is wrong, as
located `diagnostics`; `validate` runs them all; `formatter` prints an IR back as
canonical DSL. Everything later in the pipeline (code generation, jobs, serving)
starts from a `validate.Result`.
"""
