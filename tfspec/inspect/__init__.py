"""Tools that look at a model before or beside training (need TensorFlow).

`plan` (each layer's shape, parameters and FLOPs), `graph` (the model as Graphviz),
`dataview` (the data pipeline, checked against the model: `tfspec data`),
`convertcheck` (will it convert to TFLite / TF.js: `plan --target`), and `importer`
(a Keras model -> a spec: `tfspec import`).
"""
