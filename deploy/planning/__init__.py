"""The pure planner: from the course's configuration and what its server reported, the
explained steps (``planner``) and their Markdown (``render``). No I/O."""
