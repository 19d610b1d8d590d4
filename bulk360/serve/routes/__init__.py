"""The API's endpoints, one module per group, each adding its routes to the app."""
