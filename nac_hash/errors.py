"""The root of nac-hash's own exceptions: a bad file, checkpoint or index given by the user.

The command line and the service report these (and ``ValueError``, ``LookupError`` and
``FileNotFoundError`` from bad arguments) as a clear message instead of a traceback.
"""


class NacHashError(Exception):
    """A checkpoint, catalog or index directory that cannot be used as given."""
