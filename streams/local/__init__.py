"""One machine's Kafka: the embedded broker the project launches, and the demo that uses it."""
