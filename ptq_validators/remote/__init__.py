"""Remote clusters over SSH: cluster config, SSH transports (paramiko, OpenSSH ControlMaster),
an SFTP byte source. Everything here implements the ``Runner`` of ``ptq_validators.launch.runner``
or the ``ByteSource`` of ``ptq_validators.io.source``, so launch, jobs and the gate do not change."""
