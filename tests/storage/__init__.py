"""Object-store tests; a package, so that its conftest does not shadow the benches' ``conftest`` module."""
