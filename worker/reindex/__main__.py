"""``python -m worker.reindex``: the ``tutor-reindex`` command line."""

from worker.reindex.cli import main

if __name__ == "__main__":
    main()
