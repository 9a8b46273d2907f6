"""Will it serve? Engine compatibility from headers (``compat``, data in ``data/``) and the serving
canary (``run``: reach an engine, ask ``prompts``, judge with ``checks``, record for the gate)."""
