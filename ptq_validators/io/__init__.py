"""Where checkpoint bytes come from (a local directory now; SFTP slots in behind the same
interface) and the strict safetensors header parser."""
