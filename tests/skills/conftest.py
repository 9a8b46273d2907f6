"""Fixtures for the skill pack tests: the loopback SLURM for the cluster scenario."""

from tests.infra.services import slurm_infra  # noqa: F401  (fixture)
