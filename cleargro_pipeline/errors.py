"""The base of every error this project raises on purpose: its message names what was wrong
(tenant, file, line, cause) and is safe to show: no keys, no customer values."""


class CleargroError(Exception):
    pass


class CredentialsRejected(CleargroError):
    """A source refused the tenant's stored credentials (revoked, expired or wrong): syncing it
    cannot succeed until the merchant reconnects it. Raises the `credentials_invalid` alert."""
