"""Software-defined assets: thin wrappers that call core/ and report what they did."""
