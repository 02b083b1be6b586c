"""Durable jobs: the registry of operations and its entries, the runner, the command grammar,
the job kinds, and how a job shows on GitHub (its texts and check runs)."""
