"""Job launching: a validated job spec → rendered job files → a local run → job records.

Data flow (one direction): ``spec`` (JobSpec from YAML/flags) → ``workspace`` (where the job's
files live) → ``render`` (Jinja2 templates, values quoted in Python) → ``lint`` (bash -n,
shellcheck, YAML schemas) → ``execute`` (what runs: bare, docker or sbatch) → ``jobs`` (records,
status, logs, cancel) on a ``runner`` (local now; the same interface fits an SSH runner).
"""
