"""``python -m aekit`` is the ``aekit`` command."""

from .cli import main

if __name__ == "__main__":
    main()
