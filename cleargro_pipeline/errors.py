"""The base of every error this project raises on purpose: its message names what was wrong
(tenant, file, line, cause) and is safe to show: no keys, no customer values."""


class CleargroError(Exception):
    pass
