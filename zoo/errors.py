"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""


class ZooError(Exception):
    """A user-facing error: bad input, unknown name, missing file. Never a bug."""


class UnknownModelError(ZooError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginConflictError(ZooError):
    """Two plugin distributions registered the same model name."""


class PluginWarning(UserWarning):
    """A plugin failed to load or to register; every other model still works."""
