"""Study services by sub-domain: ingest (films in), exports (films out), reads (audited
lists)."""
