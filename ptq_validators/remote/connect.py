"""Open the runner of a cluster: the transport its ``clusters.yaml`` entry names.

In: a ``Cluster`` and the host-key choice. Out: a ``Runner`` (paramiko, the default, or OpenSSH
through a live ControlMaster). Nothing connects until the first call, except the OpenSSH
transport's master check, which must fail before anything runs.
"""

from __future__ import annotations

from ptq_validators.remote.config import Cluster
from ptq_validators.remote.openssh_transport import OpenSSHRunner
from ptq_validators.remote.paramiko_transport import ParamikoRunner
from ptq_validators.remote.shell import ShellRunner
from ptq_validators.remote.ssh_config import resolve


def connect(cluster: Cluster, *, accept_new_host_key: bool = False) -> ShellRunner:
    if cluster.transport == "openssh":
        return OpenSSHRunner(cluster)
    return ParamikoRunner(resolve(cluster), accept_new_host_key=accept_new_host_key)
