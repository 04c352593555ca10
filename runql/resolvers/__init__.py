"""The standard executor's resolvers: root queries, links made from the run graph
(runql.storage.graph), per-request DataLoaders, mutations and subscriptions. They take and
return rows; runql.schema says which GraphQL type a row stands for."""
