"""Expected failures are one clear sentence on stderr, never a traceback."""
import errno
import sys


class UserError(Exception):
    """A bad input or state the user can fix; the message is the whole story."""


# why a write failed, for the errors a user fixes by picking another place or making room
CANNOT_WRITE = {errno.EROFS: "read-only filesystem", errno.EACCES: "permission denied",
                errno.EPERM: "permission denied", errno.ENOSPC: "no space left on the device",
                errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large for this filesystem"}
FIX = "pick another --output or make room"


def write_problem(e):
    """The reason an OSError or mlx's saver gives for a write that failed, None for others.
    mlx says only "[write] Unable to write N bytes" (a full disk, as the errno is lost)."""
    if isinstance(e, OSError):
        return CANNOT_WRITE.get(e.errno)
    if isinstance(e, RuntimeError) and str(e).startswith("[write]"):
        return f"no space left on the device? ({str(e).splitlines()[0]})"
    return None


def run_main(main):
    """Run a stage's main(): UserError -> one line on stderr and exit 2; so is a write
    that failed for a reason the user fixes (read-only, permission, no space) where no
    stage caught it, naming the file when the OS does."""
    try:
        rc = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (OSError, RuntimeError) as e:
        why = write_problem(e)
        if why is None:
            raise
        where = getattr(e, "filename", None) or "an output"
        print(f"error: cannot use {where}: {why}; {FIX}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept; run again to continue", file=sys.stderr)
        sys.exit(130)
    sys.exit(rc or 0)
