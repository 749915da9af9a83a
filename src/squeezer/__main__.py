"""`python -m squeezer` is the `squeezer` command."""

from squeezer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
