"""meshctl: the command-line client of the meshui API (docs/cli.md).

A thin client: it speaks HTTP to ``/api/v1/`` with a per-user API token and never imports
Django or the web app's modules, so it runs on a laptop with only the package installed
(an import-linter contract in pyproject.toml keeps it so).
"""
