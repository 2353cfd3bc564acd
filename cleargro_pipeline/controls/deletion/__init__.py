"""Deleting a tenant, with a signed certificate as proof (crypto-shredding first): the durable
request journal (`requests`), the journalled steps that carry a request out (`steps`) and the
Ed25519-signed certificate (`certificate`). The design is described in `controls/README.md`."""

from cleargro_pipeline.controls.deletion.certificate import (
    SIGNING_KEY_NAME,
    Certificate,
    CertificateInvalid,
    certificates_dir,
    signing_key,
    signing_public_key_path,
    verify_certificate,
)
from cleargro_pipeline.controls.deletion.requests import (
    OVERDUE_DAYS,
    SOURCES,
    DeletionError,
    DeletionRequest,
    NoDeletionRequest,
    deleting,
    is_deleting,
    overdue,
    pending,
    request,
    status,
)
from cleargro_pipeline.controls.deletion.steps import run

__all__ = ["OVERDUE_DAYS", "SIGNING_KEY_NAME", "SOURCES", "Certificate", "CertificateInvalid",
           "DeletionError", "DeletionRequest", "NoDeletionRequest", "certificates_dir",
           "deleting", "is_deleting", "overdue", "pending", "request", "run", "signing_key",
           "signing_public_key_path", "status", "verify_certificate"]
