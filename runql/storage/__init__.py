"""Storage: the tables and their migrations, the run graph's declaration (graph.py), and the
SQL building blocks both executors use: batch reads, keyset pages, filters. Knows no GraphQL
and no transport."""
