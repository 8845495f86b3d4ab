"""`tfspec lsp`: the language server for .tfspec and .tfspec.json documents (pygls)."""
