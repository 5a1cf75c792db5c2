"""accounts domain (see models, schemas, service, router)."""
