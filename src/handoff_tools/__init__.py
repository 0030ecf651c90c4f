"""What is not the product: the benchmark, the demo and its throwaway keys, the seeded synthetic
source, and the local S3 + KMS endpoint. They may use everything in ``handoff``; nothing in
``handoff`` but the CLI's commands that start them uses them (an import-linter contract)."""
