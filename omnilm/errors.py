"""Expected failures are one clear sentence on stderr, never a traceback."""
import sys


class UserError(Exception):
    """A bad input or state the user can fix; the message is the whole story."""


def run_main(main):
    """Run a stage's main(): UserError -> one line on stderr and exit 2."""
    try:
        rc = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept; run again to continue", file=sys.stderr)
        sys.exit(130)
    sys.exit(rc or 0)
