"""Prefect flows composing the handoff domain: transfer (with approval) and release."""
