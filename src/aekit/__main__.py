"""``python -m aekit`` is the ``aekit`` command."""

from .cli import run

if __name__ == "__main__":
    run()
