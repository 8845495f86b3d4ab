"""Jobs: loading and running compiled programs (needs TensorFlow).

`build` executes a program's text as a module and builds its model, turning what
Keras raises into located diagnostics; `runner` is `tfspec run` / `export` /
`verify` (the program's own `main`, in this process); `launch` starts one process
of `tfspec run` per worker for multi-worker training on one machine.
"""
