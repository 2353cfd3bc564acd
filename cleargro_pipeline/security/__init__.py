"""Keys, sealed secrets, the audit log and the at-rest verifier: the security primitives every other room relies on."""
