"""teaching domain (see models, schemas, service, router)."""
