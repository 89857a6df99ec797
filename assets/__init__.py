"""Software-defined assets: files that should always exist and be current."""
