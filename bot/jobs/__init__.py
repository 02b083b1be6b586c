"""Durable jobs: the registry of operations, the runner, the command grammar, the job kinds."""
