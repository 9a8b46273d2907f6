"""Fixtures for the skill pack tests: the loopback SLURM and sshd, and a HOME whose
clusters.yaml and known_hosts point at them (the remote tests' fixtures)."""

from tests.infra.services import slurm_infra, ssh_infra  # noqa: F401  (fixtures)
from tests.remote.conftest import cluster_home, home  # noqa: F401  (fixtures)
