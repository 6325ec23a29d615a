"""Pure methods on arrays and tables, importable and testable without Snakemake."""
