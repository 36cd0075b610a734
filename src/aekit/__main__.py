"""``python -m aekit`` is the ``aekit`` command."""

from .commands import run

if __name__ == "__main__":
    run()
