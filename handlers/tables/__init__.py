"""Code tables (CSV) that validation checks values against."""
