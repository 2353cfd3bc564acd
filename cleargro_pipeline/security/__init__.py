"""Keys and pseudonyms, sealed secrets, the audit log, the export archives' STREAM cipher, the TLS
client context and the at-rest verifier: the security primitives every other room relies on
(designs in `security/README.md`)."""
