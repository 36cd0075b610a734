"""The web app of ``aekit serve``: a FastAPI server (``server``) and its static page. FastAPI
and uvicorn are the optional ``web`` extra; ``aekit.cli.serve`` imports them only when the
command runs."""
