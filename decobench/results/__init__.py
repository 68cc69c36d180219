"""Result files: one JSON per run, validated against a versioned schema."""
