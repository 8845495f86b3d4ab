"""Code generation: a checked spec -> the Keras program that `tfspec run` executes.

`program.compile_file` / `compile_text` / `compile_result` are the front door. They
write the program with `model` (build_model() and the spec-wide values), `data`
(tf.data), `train` (optimizer, loss, loop, strategy) and `export` (export targets and
their parity checks), on top of `pytext` (Python names and literals) and `writer`
(lines with their spec positions). Pure text work: never imports TensorFlow.
"""
