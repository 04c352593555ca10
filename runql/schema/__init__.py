"""The GraphQL schema: strawberry types, inputs, enums and scalars, the lists' argument checks
(arguments.py), and the schema itself (schema.py). It imports resolvers; what serves it
(extensions, the fast path) is composed in runql.served_schema."""
