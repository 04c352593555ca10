"""Running runql in production: health and readiness, Prometheus metrics, JSON logs with
request ids, and optional OpenTelemetry tracing."""
