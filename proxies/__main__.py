"""``python -m proxies``: run a sidecar."""

from proxies.cli import main

if __name__ == "__main__":
    main()
