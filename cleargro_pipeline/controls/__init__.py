"""Customer data controls: backups, export, retention, scopes, disconnect, OAuth revocation and tenant deletion."""
