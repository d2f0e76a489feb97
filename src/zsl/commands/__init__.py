"""CLI commands beyond the core ones: each module exposes ``register(subparsers)`` (see zsl.cli)."""
