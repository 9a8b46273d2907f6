"""Pre-flight: what to know before calibration starts.

``env`` (what this machine offers), ``gpus`` + ``recommend`` (which format for which GPU),
``model`` / ``remote_code`` / ``sizing`` (what the model needs), ``inventory`` + ``plan`` (what a
recipe would do to the model's real module names). Each returns plain data; the CLI prints it.
Nothing here imports torch or transformers at module level; only the meta-device inventory does,
inside the function that needs it.
"""
