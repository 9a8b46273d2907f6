"""ptq-validators: pre-flight checks, job templates and the post-PTQ gate for quantized LLMs."""

__version__ = "0.1.0"
