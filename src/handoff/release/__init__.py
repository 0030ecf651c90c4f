"""Releasing a batch: recording approvals (``decisions``), the handover (every gate re-evaluated, the
lease taken), the upload behind the guard, the manifest and the proof it carries, withdrawal, the
text views of a batch, and the recipient's ``verify``. Uses everything below it.
"""
