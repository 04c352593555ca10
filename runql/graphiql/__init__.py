"""GraphiQL served by runql itself: a page and the bundle `make graphiql` builds, no CDN."""
