"""File writers, one module per format, all fed the same computed batches."""
