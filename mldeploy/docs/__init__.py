"""What documents the API: the OpenAPI document, Swagger UI at /docs, the playground at /."""
