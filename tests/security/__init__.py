"""Security tests: webhook fuzzing, permissions, injection, host keys and the secret scan."""
