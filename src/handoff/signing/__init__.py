"""Who may say yes: the reviewed trust file (OpenSSH ``allowed_signers``), the SSH key types it may
list, and signed statements with their schema. Pure: no database, no S3, no network.
"""
