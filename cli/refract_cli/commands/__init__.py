"""The `refract` commands, one module per area; `main` puts them together."""
