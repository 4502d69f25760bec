"""Operations: database migrations, Kafka topics and readiness checks, shared by every deployable,
`make run`, the tests and CI."""
