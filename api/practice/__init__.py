"""practice domain (see models, schemas, service, router)."""
