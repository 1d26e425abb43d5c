"""crm-builder engine: app definitions, storage, records."""
