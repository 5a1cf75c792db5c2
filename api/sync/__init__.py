"""sync domain (see models, schemas, service, router)."""
